"""Console ports (base.ConsolePort): the pty libvirt gives a running guest's
serial device (`<serial type='pty'>` with a `<log>` file), and the fake
driver's echo."""

from __future__ import annotations

import asyncio
import os
import termios
import tty
from pathlib import Path

from noded.hypervisor.base import ConsolePort, DriverError

READ_CHUNK = 64 * 1024


class PtyPort(ConsolePort):
    """The guest side's pty (qemu holds the master), opened raw so the host's
    line discipline neither echoes nor translates: the guest's tty does that."""

    def __init__(self, path: str) -> None:
        try:
            self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError as exc:
            raise DriverError(f"cannot open the guest's console {path}: {exc.strerror}") from None
        try:
            tty.setraw(self.fd, termios.TCSANOW)
        except termios.error as exc:
            os.close(self.fd)
            raise DriverError(f"{path} is not a terminal: {exc}") from None
        self.closed = False

    async def _ready(self, add: str, remove: str) -> None:
        loop = asyncio.get_running_loop()
        ready = loop.create_future()
        getattr(loop, add)(self.fd, lambda: ready.done() or ready.set_result(None))
        try:
            await ready
        finally:
            getattr(loop, remove)(self.fd)

    async def read(self) -> bytes:
        while not self.closed:
            try:
                return os.read(self.fd, READ_CHUNK)
            except BlockingIOError:
                await self._ready("add_reader", "remove_reader")
            except OSError:  # EIO: qemu closed the master (the guest stopped)
                return b""
        return b""

    async def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view and not self.closed:
            try:
                view = view[os.write(self.fd, view) :]
            except BlockingIOError:
                await self._ready("add_writer", "remove_writer")

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            os.close(self.fd)


class EchoPort(ConsolePort):
    """The fake guest's serial device: what is typed comes back, and is
    appended to the guest's console log as a real guest's output would be."""

    def __init__(self, log: Path | None) -> None:
        self.log = log
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()

    async def read(self) -> bytes:
        return await self.queue.get()

    async def write(self, data: bytes) -> None:
        if self.log is not None and self.log.parent.is_dir():
            with open(self.log, "ab") as fh:
                fh.write(data)
        self.queue.put_nowait(data)

    def close(self) -> None:
        self.queue.put_nowait(b"")
