"""`kumo server console --attach | --follow`: a raw terminal on a server's
serial console (Ctrl-] leaves; the terminal's settings always come back),
and the console log followed live."""

from __future__ import annotations

import os
import queue
import select
import sys
import termios
import threading
import tty
from collections.abc import Iterator
from typing import Any

import grpc

from kumo.v1 import compute_pb2 as pb

ESCAPE = b"\x1d"  # Ctrl-]


def follow(stub: Any, instance_id: str, tail_bytes: int) -> None:
    """Writes the log's tail, then what the guest writes, until Ctrl-C or the console ends."""
    first = pb.AttachConsoleRequest(id=instance_id, mode=pb.CONSOLE_MODE_READ_ONLY, tail_bytes=tail_bytes)
    call = stub.AttachConsole(iter([first]), timeout=None)
    out = sys.stdout.buffer
    try:
        for msg in call:
            out.write(msg.data)
            out.flush()
    except KeyboardInterrupt:
        call.cancel()


def attach(stub: Any, instance_id: str, name: str) -> None:
    """Input from this terminal (raw) to the guest, its output to this terminal."""
    inputs: queue.Queue[bytes | None] = queue.Queue()

    def requests() -> Iterator[pb.AttachConsoleRequest]:
        yield pb.AttachConsoleRequest(id=instance_id, mode=pb.CONSOLE_MODE_READ_WRITE)
        while (data := inputs.get()) is not None:
            yield pb.AttachConsoleRequest(data=data)

    call = stub.AttachConsole(requests(), timeout=None)
    ended = threading.Event()
    failure: list[grpc.RpcError] = []

    def show() -> None:
        try:
            for msg in call:
                os.write(sys.stdout.fileno(), msg.data)
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.CANCELLED:
                failure.append(exc)
        finally:
            ended.set()

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd) if os.isatty(fd) else None
    sys.stderr.write(f"Connected to the console of {name} (Ctrl-] to leave)\r\n")
    sys.stderr.flush()
    threading.Thread(target=show, name="console-output", daemon=True).start()
    try:
        if saved is not None:
            tty.setraw(fd, termios.TCSANOW)
        while not ended.is_set():
            ready, _, _ = select.select([fd], [], [], 0.2)
            if not ready:
                continue
            data = os.read(fd, 4096)
            if not data:  # end of input: leave
                break
            head, escaped, _ = data.partition(ESCAPE)
            if head:
                inputs.put(head)
            if escaped:
                break
    finally:
        if saved is not None:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        inputs.put(None)
        call.cancel()
        ended.wait(5)
        sys.stderr.write("\nConsole closed.\n")
    if failure:
        raise failure[0]
