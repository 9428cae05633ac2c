"""Drives the Trellis interop worker's message, child and continue-as-new workflows from the
Temporal Python SDK, and serves a Python workflow that a Trellis workflow starts as a child.

usage: python drive_messages.py ADDRESS TASK_QUEUE
Prints one JSON object per check and exits non-zero on the first mismatch.
"""
import asyncio
import json
import os
import sys
import uuid

from temporalio import workflow
from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError
from temporalio.worker import UnsandboxedWorkflowRunner, Worker


@workflow.defn(name="PyChild")
class PyChild:
    @workflow.run
    async def run(self, arg: str) -> str:
        return f"python got {arg}"


def check(name, got, want):
    ok = got == want
    print(json.dumps({"check": name, "ok": ok, "got": repr(got), "want": repr(want)}), flush=True)
    if not ok:
        sys.exit(1)


async def main(address: str, task_queue: str) -> None:
    client = await Client.connect(address)

    # Signals, queries and updates sent by Python to a Trellis workflow.
    handle = await client.start_workflow(
        "Messages", 1, id=f"py-messages-{uuid.uuid4()}", task_queue=task_queue
    )
    await handle.signal("add", 2)
    await handle.signal("add", 4)
    total = None
    for _ in range(100):
        total = await handle.query("total")
        if total == 7:
            break
        await asyncio.sleep(0.1)
    check("query-after-signals", total, 7)
    check("update-result", await handle.execute_update("add_and_get", 5), 12)
    try:
        await handle.execute_update("add_and_get", -1)
        check("update-rejected", "accepted", "rejected")
    except WorkflowUpdateFailedError as e:
        cause = e.cause
        check("update-rejected", isinstance(cause, ApplicationError) and cause.message, "cannot add -1")
    try:
        await handle.execute_update("no_such_update", 1)
        check("update-unknown", "accepted", "rejected")
    except WorkflowUpdateFailedError as e:
        check("update-unknown", "no_such_update" in str(e.cause), True)
    await handle.execute_update("finish")
    check("messages-result", await handle.result(), 12)
    history = await handle.fetch_history()
    accepted = sum(1 for e in history.events if e.HasField("workflow_execution_update_accepted_event_attributes"))
    check("rejected-updates-not-in-history", accepted, 2)

    # Cancelling a Trellis workflow that never asks about cancellation closes it as cancelled.
    waiting = await client.start_workflow(
        "Messages", 0, id=f"py-messages-cancel-{uuid.uuid4()}", task_queue=task_queue
    )
    check("update-before-cancel", await waiting.execute_update("add_and_get", 1), 1)
    await waiting.cancel()
    try:
        await waiting.result()
        check("cancel-closes-as-cancelled", "completed", "cancelled")
    except WorkflowFailureError as e:
        check("cancel-closes-as-cancelled", type(e.cause).__name__, "CancelledError")
    check(
        "cancelled-status",
        (await waiting.describe()).status,
        WorkflowExecutionStatus.CANCELED,
    )

    # Update-with-start: the first call starts the run and the update is delivered with the
    # start; the second finds it running and uses it.
    uws_id = f"py-messages-uws-{uuid.uuid4()}"

    def start_op():
        return WithStartWorkflowOperation(
            "Messages",
            10,
            id=uws_id,
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )

    first = start_op()
    check(
        "update-with-start-starts",
        await client.execute_update_with_start_workflow("add_and_get", 5, start_workflow_operation=first),
        15,
    )
    second = start_op()
    check(
        "update-with-start-uses-running",
        await client.execute_update_with_start_workflow("add_and_get", 1, start_workflow_operation=second),
        16,
    )
    first_handle = await first.workflow_handle()
    second_handle = await second.workflow_handle()
    check("update-with-start-same-run", first_handle.result_run_id == second_handle.result_run_id, True)
    await first_handle.execute_update("finish")
    check("update-with-start-result", await first_handle.result(), 16)

    # A Trellis workflow starting a child workflow that this Python worker serves.
    py_queue = f"{task_queue}-py"
    async with Worker(
        client, task_queue=py_queue, workflows=[PyChild], workflow_runner=UnsandboxedWorkflowRunner()
    ):
        got = await client.execute_workflow(
            "Parent",
            {"workflow_type": "PyChild", "task_queue": py_queue, "arg": "hello"},
            id=f"py-parent-{uuid.uuid4()}",
            task_queue=task_queue,
        )
        check("child-served-by-python", got, "python got hello")

    # Continue-as-new carrying state.
    got = await client.execute_workflow(
        "CountDown", args=[3, 0], id=f"py-countdown-{uuid.uuid4()}", task_queue=task_queue
    )
    check("continue-as-new", got, "done after 4 runs")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
    # Leave without interpreter finalization (see drive.py).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
