"""An AttachConsole call driven from a test: input from a queue, output
gathered on a thread (tests/test_console_fake.py, tests/test_multi_controller.py)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

import grpc

from kumo.v1 import compute_pb2 as pb
from tests.harness import Client
from tests.nodeutil import wait_for


class Attached:
    """An AttachConsole call: input from a queue, output gathered on a thread."""

    def __init__(self, client: Client, first: pb.AttachConsoleRequest) -> None:
        self.input: queue.Queue[pb.AttachConsoleRequest | None] = queue.Queue()
        self.input.put(first)
        self.output = b""
        self.error: grpc.RpcError | None = None
        self.ended = threading.Event()
        self.call = client.compute.AttachConsole(self._requests(), timeout=120)
        threading.Thread(target=self._read, daemon=True).start()

    def _requests(self) -> Iterator[pb.AttachConsoleRequest]:
        while (msg := self.input.get()) is not None:
            yield msg

    def _read(self) -> None:
        try:
            for msg in self.call:
                self.output += msg.data
        except grpc.RpcError as exc:
            self.error = exc
        finally:
            self.ended.set()

    def send(self, data: bytes) -> None:
        self.input.put(pb.AttachConsoleRequest(data=data))

    def wait_output(self, want: bytes) -> None:
        wait_for(lambda: want in self.output or self.ended.is_set(), what=f"{want!r} on the console")
        assert want in self.output, (self.output[-200:], self.error)

    def failure(self) -> grpc.RpcError:
        assert self.ended.wait(30), "the call did not end"
        assert self.error is not None, f"the call succeeded: {self.output[-200:]!r}"
        return self.error

    def close(self) -> None:
        self.call.cancel()
        self.input.put(None)
        self.ended.wait(10)


def attach(client: Client, iid: str, mode: int, **kw: object) -> Attached:
    return Attached(client, pb.AttachConsoleRequest(id=iid, mode=mode, **kw))
