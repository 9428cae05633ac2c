"""A Python SDK worker serving a Nexus service that a Trellis workflow calls.

Usage: nexus_handler.py ADDRESS TASK_QUEUE
Prints "ready" once the worker polls, then serves until killed.
"""

import asyncio
import os
import sys
from dataclasses import dataclass

import nexusrpc
import nexusrpc.handler
from temporalio.client import Client
from temporalio.worker import Worker


@dataclass
class City:
    name: str


@dataclass
class Forecast:
    city: str
    celsius: int


@nexusrpc.service(name="WeatherService")
class WeatherService:
    get_weather: nexusrpc.Operation[City, Forecast]


@nexusrpc.handler.service_handler(service=WeatherService)
class WeatherHandler:
    @nexusrpc.handler.sync_operation
    async def get_weather(
        self, ctx: nexusrpc.handler.StartOperationContext, city: City
    ) -> Forecast:
        if not city.name:
            raise nexusrpc.HandlerError(
                "the city has no name",
                type=nexusrpc.HandlerErrorType.BAD_REQUEST,
                retryable_override=False,
            )
        # Python's answer differs from the Trellis handler's, so the test knows who answered.
        return Forecast(city=city.name, celsius=len(city.name) + 22)


async def main() -> None:
    address, task_queue = sys.argv[1:3]
    client = await Client.connect(address)
    async with Worker(
        client, task_queue=task_queue, nexus_service_handlers=[WeatherHandler()]
    ):
        print("ready", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    finally:
        # The SDK's native threads may abort interpreter finalization; exit at once.
        sys.stdout.flush()
        os._exit(0)
