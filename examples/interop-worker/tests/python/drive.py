"""Drives the Trellis interop worker from the Temporal Python SDK.

usage: python drive.py ADDRESS TASK_QUEUE
Prints one JSON object per check and exits non-zero on the first mismatch.
"""
import asyncio
import json
import sys
import uuid

from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError


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
        await run("Fail", {"type": "PyCheck", "message": "failed on purpose", "non_retryable": True})
        check("fail", "completed", "failed")
    except WorkflowFailureError as e:
        cause = e.cause
        check("fail-type", isinstance(cause, ApplicationError) and cause.type, "PyCheck")
        check("fail-message", cause.message, "failed on purpose")
        check("fail-non-retryable", cause.non_retryable, True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
