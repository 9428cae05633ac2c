"""Drives the Trellis interop worker running with AES-256-GCM encryption, from a Python client
with the codec of Temporal's encryption sample, then checks the raw history holds no plaintext.

usage: python drive_encrypted.py ADDRESS TASK_QUEUE KEY_ID KEY_HEX
"""
import asyncio
import dataclasses
import json
import os
import sys
import uuid
from typing import List, Sequence

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowFailureError
from temporalio.converter import DataConverter, PayloadCodec
from temporalio.exceptions import ApplicationError


class EncryptionCodec(PayloadCodec):
    def __init__(self, key_id: str, key: bytes) -> None:
        self.key_id = key_id
        self.aes = AESGCM(key)

    async def encode(self, payloads: Sequence[Payload]) -> List[Payload]:
        out = []
        for p in payloads:
            nonce = os.urandom(12)
            out.append(Payload(
                metadata={"encoding": b"binary/encrypted", "encryption-key-id": self.key_id.encode()},
                data=nonce + self.aes.encrypt(nonce, p.SerializeToString(), None),
            ))
        return out

    async def decode(self, payloads: Sequence[Payload]) -> List[Payload]:
        out = []
        for p in payloads:
            if p.metadata.get("encoding", b"").decode() != "binary/encrypted":
                out.append(p)
                continue
            key_id = p.metadata.get("encryption-key-id", b"").decode()
            if key_id != self.key_id:
                raise ValueError(f"unknown key id {key_id}")
            out.append(Payload.FromString(self.aes.decrypt(p.data[:12], p.data[12:], None)))
        return out


def check(name, got, want):
    ok = got == want
    print(json.dumps({"check": name, "ok": ok, "got": repr(got), "want": repr(want)}), flush=True)
    if not ok:
        sys.exit(1)


async def main(address: str, task_queue: str, key_id: str, key_hex: str) -> None:
    codec = EncryptionCodec(key_id, bytes.fromhex(key_hex))
    converter = dataclasses.replace(DataConverter.default, payload_codec=codec)
    client = await Client.connect(address, data_converter=converter)
    plain_client = await Client.connect(address)

    ids = []

    async def run(workflow: str, arg):
        wid = f"py-enc-{workflow}-{uuid.uuid4()}"
        ids.append(wid)
        return await client.execute_workflow(workflow, arg, id=wid, task_queue=task_queue)

    check("greet", await run("Greet", "Secret Agent"), "Hello, Secret Agent!")
    doc = {"secret": "classified-value", "n": 42}
    check("echo-json", await run("Echo", doc), doc)
    try:
        await run("Fail", {"type": "SecretError", "message": "hidden-failure-text", "non_retryable": True})
        check("fail", "completed", "failed")
    except WorkflowFailureError as e:
        check("fail-type", e.cause.type if isinstance(e.cause, ApplicationError) else None, "SecretError")
        check("fail-message", e.cause.message, "hidden-failure-text")

    leaked = []
    for wid in ids:
        async for event in plain_client.get_workflow_handle(wid).fetch_history_events():
            raw = event.SerializeToString()
            for secret in (b"Secret Agent", b"classified-value", b"hidden-failure-text"):
                if secret in raw:
                    leaked.append((wid, event.event_id, secret.decode()))
    check("no-plaintext-in-history", leaked, [])


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
    # Leave without interpreter finalization: the SDK's native runtime threads can abort a
    # finalizing interpreter ("PyGILState_Release ... must be current") after all work is done.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
