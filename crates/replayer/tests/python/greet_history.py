"""Runs a Python SDK workflow equivalent to Trellis's Greet (one activity, then a timer) on a
real server and prints its history as JSON (the SDK's own `to_json`).

usage: python greet_history.py ADDRESS TASK_QUEUE WORKFLOW_ID
"""
import asyncio
import os
import sys
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker


@activity.defn(name="compose_greeting")
async def compose_greeting(greeting: str, name: str) -> str:
    return f"{greeting}, {name}!"


@workflow.defn(name="Greet")
class Greet:
    @workflow.run
    async def run(self, name: str) -> str:
        greeting = await workflow.execute_activity(
            "compose_greeting", args=["Hello", name], start_to_close_timeout=timedelta(seconds=10)
        )
        await asyncio.sleep(0.05)
        return greeting


async def main(address: str, task_queue: str, workflow_id: str) -> None:
    client = await Client.connect(address)
    async with Worker(client, task_queue=task_queue, workflows=[Greet], activities=[compose_greeting]):
        handle = await client.start_workflow(Greet.run, "Python", id=workflow_id, task_queue=task_queue)
        assert await handle.result() == "Hello, Python!"
        history = await handle.fetch_history()
    print(history.to_json())


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
    # Leave without interpreter finalization: the SDK's native runtime threads can abort a
    # finalizing interpreter ("PyGILState_Release ... must be current") after all work is done.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
