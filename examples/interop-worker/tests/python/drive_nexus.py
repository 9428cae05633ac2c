"""Drives the Trellis interop worker's Nexus side from the Temporal Python SDK: a Python
workflow calls the `Interop` service Trellis serves, and Trellis's `CallNexus` workflow calls a
service a Python worker serves.

usage: python drive_nexus.py ADDRESS TASK_QUEUE ENDPOINT PY_TASK_QUEUE PY_ENDPOINT
(ENDPOINT targets TASK_QUEUE, where the interop worker polls; PY_ENDPOINT targets PY_TASK_QUEUE.)
Prints one JSON object per check and exits non-zero on the first mismatch.
"""
import asyncio
import base64
import json
import os
import sys
import uuid
from datetime import timedelta

import nexusrpc
import nexusrpc.handler
from temporalio import workflow
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.exceptions import ApplicationError, NexusOperationError
from temporalio.worker import UnsandboxedWorkflowRunner, Worker


@nexusrpc.service(name="PyService")
class PyService:
    shout: nexusrpc.Operation[str, str]


@nexusrpc.handler.service_handler(service=PyService)
class PyServiceHandler:
    @nexusrpc.handler.sync_operation
    async def shout(self, ctx: nexusrpc.handler.StartOperationContext, text: str) -> str:
        return text.upper() + " (from Python)"


@workflow.defn(name="PyCallInterop")
class PyCallInterop:
    @workflow.run
    async def run(self, endpoint: str, operation: str, arg) -> dict:
        client = workflow.create_nexus_client(service="Interop", endpoint=endpoint)
        try:
            result = await client.execute_operation(
                operation, arg, schedule_to_close_timeout=timedelta(seconds=30)
            )
            return {"result": result}
        except NexusOperationError as err:
            cause = err.__cause__
            out = {"class": type(cause).__name__, "message": getattr(cause, "message", str(cause))}
            if isinstance(cause, nexusrpc.HandlerError):
                out["type"] = cause.type.name
            if isinstance(cause, ApplicationError):
                out["type"] = cause.type
            return {"error": out}


@workflow.defn(name="PyCancelInterop")
class PyCancelInterop:
    """Starts an asynchronous (workflow-run) operation, cancels it, and reports the token and
    how the operation ended."""

    @workflow.run
    async def run(self, endpoint: str, operation: str, arg) -> dict:
        client = workflow.create_nexus_client(service="Interop", endpoint=endpoint)
        handle = await client.start_operation(
            operation,
            arg,
            schedule_to_close_timeout=timedelta(seconds=60),
            cancellation_type=workflow.NexusOperationCancellationType.WAIT_COMPLETED,
        )
        handle.cancel()
        try:
            await handle
            return {"token": handle.operation_token, "error": None}
        except NexusOperationError as err:
            return {"token": handle.operation_token, "error": type(err.__cause__).__name__}


def token_workflow_id(token: str) -> str:
    """The workflow id in a workflow-run operation token (base64url JSON, no padding)."""
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    return json.loads(raw)["wid"]


def check(name, got, want):
    ok = got == want
    print(json.dumps({"check": name, "ok": ok, "got": repr(got), "want": repr(want)}), flush=True)
    if not ok:
        sys.exit(1)


async def main(address, task_queue, endpoint, py_task_queue, py_endpoint) -> None:
    client = await Client.connect(address)
    async with Worker(
        client,
        task_queue=py_task_queue,
        workflows=[PyCallInterop, PyCancelInterop],
        nexus_service_handlers=[PyServiceHandler()],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        async def call(operation, arg):
            return await client.execute_workflow(
                PyCallInterop.run,
                args=[endpoint, operation, arg],
                id=f"py-nexus-{operation}-{uuid.uuid4()}",
                task_queue=py_task_queue,
                execution_timeout=timedelta(seconds=60),
            )

        check("python-calls-trellis-sync", await call("greet", "Python"), {"result": "Hello, Python!"})
        check(
            "python-calls-trellis-echo",
            await call("echo", {"a": [1, 2], "b": None}),
            {"result": {"a": [1, 2], "b": None}},
        )
        check(
            "python-sees-handler-error",
            await call("fail", {"type": "BAD_REQUEST", "message": "no such city"}),
            {"error": {"class": "HandlerError", "message": "no such city", "type": "BAD_REQUEST"}},
        )
        failed = await call("fail", {"type": "OPERATION_FAILED", "message": "the city is gone"})
        check("python-sees-operation-failure", failed["error"]["message"], "the city is gone")
        check(
            "python-calls-trellis-workflow-run",
            await call("greet_workflow", "Ada"),
            {"result": "Hello, Ada!"},
        )
        cancelled = await client.execute_workflow(
            PyCancelInterop.run,
            args=[endpoint, "sleep_workflow", 600_000],
            id=f"py-nexus-cancel-{uuid.uuid4()}",
            task_queue=py_task_queue,
            execution_timeout=timedelta(seconds=60),
        )
        check("python-cancels-trellis-workflow-run", cancelled["error"], "CancelledError")
        sleeper = client.get_workflow_handle(token_workflow_id(cancelled["token"]))
        check(
            "the-backing-workflow-is-cancelled",
            (await sleeper.describe()).status,
            WorkflowExecutionStatus.CANCELED,
        )
        result = await client.execute_workflow(
            "CallNexus",
            {"endpoint": py_endpoint, "service": "PyService", "operation": "shout", "input": "hi"},
            id=f"trellis-calls-python-{uuid.uuid4()}",
            task_queue=task_queue,
            execution_timeout=timedelta(seconds=60),
        )
        check("trellis-calls-python", result, "HI (from Python)")


if __name__ == "__main__":
    code = 0
    try:
        asyncio.run(main(*sys.argv[1:6]))
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        # The SDK's native threads may abort interpreter finalization; exit at once.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
