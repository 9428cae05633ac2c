"""Drives the Trellis interop worker from the Temporal Python SDK.

usage: python drive.py ADDRESS TASK_QUEUE
Prints one JSON object per check and exits non-zero on the first mismatch.
"""
import asyncio
import os
import json
import sys
import uuid

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.client import Client, WorkflowFailureError
from temporalio.converter import (
    BinaryNullPayloadConverter,
    BinaryPlainPayloadConverter,
    BinaryProtoPayloadConverter,
    CompositePayloadConverter,
    DataConverter,
    JSONPlainPayloadConverter,
)
from temporalio.exceptions import ApplicationError


class BinaryProtoFirstConverter(CompositePayloadConverter):
    """Writes protobuf messages as binary/protobuf (the default writes json/protobuf)."""

    def __init__(self) -> None:
        super().__init__(
            BinaryNullPayloadConverter(),
            BinaryPlainPayloadConverter(),
            BinaryProtoPayloadConverter(),
            JSONPlainPayloadConverter(),
        )


async def main(address: str, task_queue: str) -> None:
    client = await Client.connect(address)

    async def run(workflow: str, arg):
        return await client.execute_workflow(
            workflow, arg, id=f"py-{workflow}-{uuid.uuid4()}", task_queue=task_queue
        )

    def check(name, got, want):
        ok = got == want
        print(json.dumps({"check": name, "ok": ok, "got": repr(got), "want": repr(want)}), flush=True)
        if not ok:
            sys.exit(1)

    check("greet", await run("Greet", "Python"), "Hello, Python!")
    doc = {"id": 7, "tags": ["a", "b"], "nested": {"x": 1.5, "y": None}, "text": "héllo"}
    check("echo-json", await run("Echo", doc), doc)
    check("echo-bytes", await run("Echo", b"\x00\x01binary\xff"), b"\x00\x01binary\xff")
    check("echo-null", await run("Echo", None), None)
    check("sleep", await run("Sleep", 100), 100)
    try:
        await run("Fail", {"type": "PyCheck", "message": "failed on purpose", "non_retryable": True,
                           "details": [{"order": 7}, "second"]})
        check("fail", "completed", "failed")
    except WorkflowFailureError as e:
        cause = e.cause
        check("fail-type", isinstance(cause, ApplicationError) and cause.type, "PyCheck")
        check("fail-message", cause.message, "failed on purpose")
        check("fail-non-retryable", cause.non_retryable, True)
        check("fail-details", list(cause.details), [{"order": 7}, "second"])

    # Payloads a Python client writes, read by a Trellis workflow.
    check("inspect-str", await run("Inspect", "héllo"), {"encoding": "json/plain", "messageType": "", "value": "héllo"})
    check("inspect-dict", await run("Inspect", {"a": [1, 2]}), {"encoding": "json/plain", "messageType": "", "value": {"a": [1, 2]}})
    check("inspect-bytes", await run("Inspect", b"\x00\x01\x02"), {"encoding": "binary/plain", "messageType": "", "length": 3})
    check("inspect-none", await run("Inspect", None), {"encoding": "binary/null", "messageType": ""})
    proto = WorkflowExecution(workflow_id="wf-from-python", run_id="run-1")
    check("inspect-proto-json", await run("Inspect", proto), {
        "encoding": "json/protobuf", "messageType": "temporal.api.common.v1.WorkflowExecution",
        "workflowId": "wf-from-python", "runId": "run-1"})
    binary_client = await Client.connect(address, data_converter=DataConverter(
        payload_converter_class=BinaryProtoFirstConverter))
    got = await binary_client.execute_workflow("Inspect", proto, id=f"py-Inspect-{uuid.uuid4()}", task_queue=task_queue)
    check("inspect-proto-binary", got, {
        "encoding": "binary/protobuf", "messageType": "temporal.api.common.v1.WorkflowExecution",
        "workflowId": "wf-from-python", "runId": "run-1"})


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
    # Leave without interpreter finalization: the SDK's native runtime threads can abort a
    # finalizing interpreter ("PyGILState_Release ... must be current") after all work is done.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
