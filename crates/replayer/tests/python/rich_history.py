"""Runs a Python SDK workflow that uses a local activity, a child workflow (signalled), a timer,
an update and a signal on a real server, and prints its history as JSON (the SDK's own
`to_json`). Trellis replays it with a workflow of the same shape.

usage: python rich_history.py ADDRESS TASK_QUEUE WORKFLOW_ID
"""
import asyncio
import os
import sys
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker


@activity.defn(name="compose_greeting")
async def compose_greeting(greeting: str, name: str) -> str:
    return f"{greeting}, {name}!"


@workflow.defn(name="RichChild")
class RichChild:
    def __init__(self) -> None:
        self.go = None

    @workflow.signal
    def go(self, value: str) -> None:
        self.go = value

    @workflow.run
    async def run(self, name: str) -> str:
        await workflow.wait_condition(lambda: self.go is not None)
        return f"{name}-{self.go}"


@workflow.defn(name="Rich")
class Rich:
    def __init__(self) -> None:
        self.total = 0
        self.done = False
        self.stage = "starting"

    @workflow.update
    async def add(self, n: int) -> int:
        self.total += n
        return self.total

    @workflow.signal
    def finish(self) -> None:
        self.done = True

    @workflow.query
    def stage(self) -> str:
        return self.stage

    @workflow.run
    async def run(self, name: str) -> str:
        greeting = await workflow.execute_local_activity(
            "compose_greeting", args=["Hi", name], start_to_close_timeout=timedelta(seconds=10)
        )
        child = await workflow.start_child_workflow(
            "RichChild", name, id=f"{workflow.info().workflow_id}-child"
        )
        await child.signal("go", "x")
        child_result = await child
        await asyncio.sleep(0.05)
        self.stage = "waiting"
        await workflow.wait_condition(lambda: self.done)
        return f"{greeting}|{child_result}|{self.total}"


async def main(address: str, task_queue: str, workflow_id: str) -> None:
    client = await Client.connect(address)
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[Rich, RichChild],
        activities=[compose_greeting],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        handle = await client.start_workflow("Rich", "Py", id=workflow_id, task_queue=task_queue)
        for _ in range(200):
            if await handle.query("stage") == "waiting":
                break
            await asyncio.sleep(0.05)
        assert await handle.execute_update("add", 5) == 5
        await handle.signal("finish")
        assert await handle.result() == "Hi, Py!|Py-x|5"
        history = await handle.fetch_history()
    print(history.to_json())


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
    # Leave without interpreter finalization (the SDK's native threads can abort it).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
