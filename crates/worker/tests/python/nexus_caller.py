"""A Python SDK workflow calling Nexus operations that a Trellis worker serves.

Usage: nexus_caller.py ADDRESS ENDPOINT TASK_QUEUE
Prints one JSON object per case: what the Python workflow observed.
"""

import asyncio
import json
import os
import sys
import uuid
from dataclasses import dataclass
from datetime import timedelta

import nexusrpc
from temporalio import workflow
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError, NexusOperationError
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


def describe(err: BaseException | None) -> dict | None:
    if err is None:
        return None
    message = getattr(err, "message", None)
    out = {
        "class": type(err).__name__,
        "message": message if isinstance(message, str) else str(err),
    }
    if isinstance(err, nexusrpc.HandlerError):
        out["type"] = err.type.name
        out["retryable"] = err.retryable
    if isinstance(err, ApplicationError):
        out["type"] = err.type
        out["non_retryable"] = err.non_retryable
    out["cause"] = describe(err.__cause__)
    return out


@workflow.defn
class CallWeather:
    @workflow.run
    async def run(self, endpoint: str, operation: str, city: str) -> dict:
        try:
            if operation == "get_weather":
                typed = workflow.create_nexus_client(
                    service=WeatherService, endpoint=endpoint
                )
                forecast = await typed.execute_operation(
                    WeatherService.get_weather,
                    City(city),
                    schedule_to_close_timeout=timedelta(seconds=30),
                )
                return {
                    "result": {
                        "type": type(forecast).__name__,
                        "city": forecast.city,
                        "celsius": forecast.celsius,
                    }
                }
            untyped = workflow.create_nexus_client(
                service="WeatherService", endpoint=endpoint
            )
            result = await untyped.execute_operation(
                operation, City(city), schedule_to_close_timeout=timedelta(seconds=30)
            )
            return {"result": result}
        except NexusOperationError as err:
            return {
                "error": {
                    "class": type(err).__name__,
                    "service": err.service,
                    "operation": err.operation,
                    "cause": describe(err.__cause__),
                }
            }


@workflow.defn
class CancelWatch:
    """Starts the asynchronous `watch` operation, then cancels it and waits until the handler
    acknowledged the cancel request."""

    @workflow.run
    async def run(self, endpoint: str, operation: str, city: str) -> dict:
        untyped = workflow.create_nexus_client(
            service="WeatherService", endpoint=endpoint
        )
        handle = await untyped.start_operation(
            operation,
            City(city),
            schedule_to_close_timeout=timedelta(seconds=30),
            cancellation_type=workflow.NexusOperationCancellationType.WAIT_REQUESTED,
        )
        token = handle.operation_token
        handle.cancel()
        try:
            await handle
            return {"token": token, "error": None}
        except NexusOperationError as err:
            return {"token": token, "error": describe(err.__cause__)}


CASES = [
    ("sync", "get_weather", "Paris"),
    ("handler-error", "get_weather", ""),
    ("operation-error", "get_weather", "Atlantis"),
    ("non-retryable-app-error", "get_weather", "Nowhere"),
    ("panic-then-retry", "get_weather", "Flaky"),
    ("unknown-operation", "get_rain", "Paris"),
    ("async-cancel", "watch", "Oslo"),
]


async def main() -> None:
    address, endpoint, task_queue = sys.argv[1:4]
    client = await Client.connect(address)
    async with Worker(
        client, task_queue=task_queue, workflows=[CallWeather, CancelWatch]
    ):
        for name, operation, city in CASES:
            run = CancelWatch.run if name == "async-cancel" else CallWeather.run
            try:
                out = await client.execute_workflow(
                    run,
                    args=[endpoint, operation, city],
                    id=f"nexus-caller-{name}-{uuid.uuid4()}",
                    task_queue=task_queue,
                    execution_timeout=timedelta(seconds=60),
                )
            except WorkflowFailureError as err:
                out = {"workflow_failed": describe(err.cause)}
            print(json.dumps({"case": name, **out}), flush=True)


if __name__ == "__main__":
    code = 0
    try:
        asyncio.run(main())
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        # The SDK's native threads may abort interpreter finalization (a fatal
        # PyGILState_Release error); exit at once with the script's own status.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
