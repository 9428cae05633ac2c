"""A Python SDK workflow calling Nexus operations that a Trellis worker serves by starting
Trellis workflows (workflow-run operations).

Usage: nexus_workflow_run_caller.py ADDRESS ENDPOINT TASK_QUEUE SUFFIX
Prints one JSON object per case: what the Python workflow observed, and the caller's ids.
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
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker


@dataclass
class Person:
    name: str


@dataclass
class Greeting:
    message: str


@nexusrpc.service(name="GreetingService")
class GreetingService:
    greet: nexusrpc.Operation[Person, Greeting]
    wait: nexusrpc.Operation[Person, Greeting]
    fail: nexusrpc.Operation[Person, Greeting]
    join: nexusrpc.Operation[Person, Greeting]


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


def client(endpoint: str):
    return workflow.create_nexus_client(service=GreetingService, endpoint=endpoint)


@workflow.defn
class Execute:
    """Runs an operation to its end: its result, or the error the caller saw."""

    @workflow.run
    async def run(self, endpoint: str, operation: str, name: str) -> dict:
        op = getattr(GreetingService, operation)
        handle = await client(endpoint).start_operation(
            op, Person(name), schedule_to_close_timeout=timedelta(seconds=60)
        )
        out: dict = {"token": handle.operation_token}
        try:
            greeting = await handle
            out["result"] = {"type": type(greeting).__name__, "message": greeting.message}
        except BaseException as err:  # noqa: BLE001 - report whatever the caller saw
            out["error"] = describe(err)
        return out


@workflow.defn
class StartThenCancel:
    """Starts `wait`, then cancels it and waits for the operation's end (the handler
    workflow's cancellation, delivered through the completion callback)."""

    @workflow.run
    async def run(self, endpoint: str, operation: str, name: str) -> dict:
        handle = await client(endpoint).start_operation(
            GreetingService.wait,
            Person(name),
            schedule_to_close_timeout=timedelta(seconds=60),
            cancellation_type=workflow.NexusOperationCancellationType.WAIT_COMPLETED,
        )
        token = handle.operation_token
        handle.cancel()
        try:
            await handle
            return {"token": token, "error": None}
        except BaseException as err:  # noqa: BLE001
            return {"token": token, "error": describe(err)}


@workflow.defn
class StartTwice:
    """Starts `wait` for a name, then starts it again for the same name (the handler derives
    the workflow id from the name) while the first runs; then cancels the first."""

    @workflow.run
    async def run(self, endpoint: str, operation: str, name: str) -> dict:
        first = await client(endpoint).start_operation(
            GreetingService.wait,
            Person(name),
            schedule_to_close_timeout=timedelta(seconds=60),
            cancellation_type=workflow.NexusOperationCancellationType.WAIT_REQUESTED,
        )
        out: dict = {"token": first.operation_token}
        try:
            await client(endpoint).execute_operation(
                GreetingService.wait,
                Person(name),
                schedule_to_close_timeout=timedelta(seconds=60),
            )
            out["error"] = None
        except BaseException as err:  # noqa: BLE001
            out["error"] = describe(err)
        first.cancel()
        try:
            await first
        except BaseException:  # noqa: BLE001
            pass
        return out


@workflow.defn
class JoinRunning:
    """Starts `wait` for a name, then `join` for the same name (the handler starts the same
    workflow id with the USE_EXISTING conflict policy, attaching its callback to the running
    workflow); cancels the first operation and reports how the second ended."""

    @workflow.run
    async def run(self, endpoint: str, operation: str, name: str) -> dict:
        first = await client(endpoint).start_operation(
            GreetingService.wait,
            Person(name),
            schedule_to_close_timeout=timedelta(seconds=60),
            cancellation_type=workflow.NexusOperationCancellationType.WAIT_REQUESTED,
        )
        second = await client(endpoint).start_operation(
            GreetingService.join,
            Person(name),
            schedule_to_close_timeout=timedelta(seconds=60),
        )
        out: dict = {"first_token": first.operation_token, "token": second.operation_token}
        first.cancel()
        try:
            await first
        except BaseException:  # noqa: BLE001
            pass
        try:
            await second
            out["error"] = None
        except BaseException as err:  # noqa: BLE001
            out["error"] = describe(err)
        return out


async def main() -> None:
    address, endpoint, task_queue, suffix = sys.argv[1:5]
    cases = [
        ("result", Execute, "greet", f"Ada-{suffix}"),
        ("failure", Execute, "fail", f"Bob-{suffix}"),
        ("cancel", StartThenCancel, "wait", f"Cy-{suffix}"),
        ("already-started", StartTwice, "wait", f"Di-{suffix}"),
        ("join-running", JoinRunning, "join", f"Ed-{suffix}"),
    ]
    client_ = await Client.connect(address)
    async with Worker(
        client_,
        task_queue=task_queue,
        workflows=[Execute, StartThenCancel, StartTwice, JoinRunning],
    ):
        for case, wf, operation, name in cases:
            workflow_id = f"nexus-wr-caller-{case}-{uuid.uuid4()}"
            try:
                handle = await client_.start_workflow(
                    wf.run,
                    args=[endpoint, operation, name],
                    id=workflow_id,
                    task_queue=task_queue,
                    execution_timeout=timedelta(seconds=90),
                )
                out = await handle.result()
                run_id = handle.result_run_id
            except WorkflowFailureError as err:
                out = {"workflow_failed": describe(err.cause)}
                run_id = None
            print(
                json.dumps(
                    {
                        "case": case,
                        "name": name,
                        "caller_workflow_id": workflow_id,
                        "caller_run_id": run_id,
                        **out,
                    }
                ),
                flush=True,
            )


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
