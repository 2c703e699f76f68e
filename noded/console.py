"""The node's end of consoles: the controller asks for one in the session
(ConsoleOpen), and the node opens a ConsoleStream on the node port for it
(the node always dials; the controller never does).

Kinds: LOG (the log's tail, then the stream ends: GetConsoleOutput), FOLLOW
(the tail, then what the guest appends: read-only consoles, any number),
INTERACTIVE (the guest's serial device through the driver: the pty libvirt
gives the guest's `<serial type='pty'>`, whose output qemu also logs)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc

from kumo.v1 import node_agent_pb2 as pb
from noded.hypervisor.base import ConsolePort, DriverError, HypervisorDriver

log = logging.getLogger("kumo.noded.console")

CHUNK = 64 * 1024
MAX_TAIL = 1024 * 1024
# How often a followed log is looked at for new output.
FOLLOW_POLL = 0.1


class ConsoleServer:
    def __init__(
        self, driver: HypervisorDriver, log_path: Callable[[str], Path], poll: float = FOLLOW_POLL
    ) -> None:
        self.driver = driver
        self.log_path = log_path
        self.poll = poll
        self.tasks: set[asyncio.Task[None]] = set()

    def start(self, stub: Any, ask: pb.ConsoleOpen) -> None:
        """Serves the console in a task of its own (called from the session's reader)."""
        task = asyncio.create_task(self.serve(stub, ask), name=f"console-{ask.console_id[:8]}")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def serve(self, stub: Any, ask: pb.ConsoleOpen) -> None:
        call = stub.ConsoleStream()
        port: ConsolePort | None = None
        try:
            try:
                if ask.kind == pb.CONSOLE_KIND_INTERACTIVE:
                    port = await self._open_port(ask.instance_id)
                    output = _port_output(port)
                elif ask.kind in (pb.CONSOLE_KIND_LOG, pb.CONSOLE_KIND_FOLLOW):
                    output = self._log_output(ask)
                    first = await anext(output, b"")  # the tail: fails now if there is no log
                else:
                    raise DriverError(f"unknown console kind {ask.kind}")
            except (DriverError, OSError) as exc:
                await call.write(pb.ConsoleStreamRequest(console_id=ask.console_id, error=str(exc)[:500]))
                await call.done_writing()
                return
            data = first if ask.kind != pb.CONSOLE_KIND_INTERACTIVE else b""
            await call.write(pb.ConsoleStreamRequest(console_id=ask.console_id, data=data))
            up = asyncio.create_task(_send(call, output))
            down = asyncio.create_task(_receive(call, port))
            try:
                done, _ = await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
                if up in done and up.exception() is None:
                    # All output is written: the controller ends the call once it has it.
                    await asyncio.wait_for(down, 30)
            finally:
                for task in (up, down):
                    task.cancel()
                await asyncio.gather(up, down, return_exceptions=True)
        except grpc.RpcError as exc:
            log.info("console stream ended", extra={"instance": ask.instance_id, "error": str(exc)[:200]})
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("console failed", extra={"instance": ask.instance_id})
        finally:
            if port is not None:
                port.close()
            call.cancel()

    async def _open_port(self, instance_id: str) -> ConsolePort:
        if self.driver.blocking:
            return await asyncio.get_running_loop().run_in_executor(
                None, self.driver.open_console, instance_id
            )
        return self.driver.open_console(instance_id)

    async def _log_output(self, ask: pb.ConsoleOpen) -> AsyncIterator[bytes]:
        """The log's last tail_bytes (one piece, maybe empty), then, when
        following, what is appended (from the start again if it shrank)."""
        path = self.log_path(ask.instance_id)
        loop = asyncio.get_running_loop()
        tail = min(max(ask.tail_bytes, 0), MAX_TAIL)
        pos, data = await loop.run_in_executor(None, _read_tail, path, tail)
        yield data
        if ask.kind != pb.CONSOLE_KIND_FOLLOW:
            return
        while True:
            await asyncio.sleep(self.poll)
            pos, data = await loop.run_in_executor(None, _read_from, path, pos)
            if data:
                yield data


def _read_tail(path: Path, tail: int) -> tuple[int, bytes]:
    with open(path, "rb") as fh:
        size = fh.seek(0, 2)
        fh.seek(max(0, size - tail))
        return size, fh.read(tail)


def _read_from(path: Path, pos: int) -> tuple[int, bytes]:
    try:
        with open(path, "rb") as fh:
            size = fh.seek(0, 2)
            if size < pos:  # truncated or replaced
                pos = 0
            fh.seek(pos)
            data = fh.read(CHUNK)
            return pos + len(data), data
    except FileNotFoundError:
        return 0, b""


async def _port_output(port: ConsolePort) -> AsyncIterator[bytes]:
    while data := await port.read():
        yield data


async def _send(call: Any, output: AsyncIterator[bytes]) -> None:
    async for data in output:
        for i in range(0, len(data), CHUNK):
            await call.write(pb.ConsoleStreamRequest(data=data[i : i + CHUNK]))
    await call.done_writing()


async def _receive(call: Any, port: ConsolePort | None) -> None:
    """The user's input until the controller ends the stream."""
    while (msg := await call.read()) is not grpc.aio.EOF:
        if port is not None and msg.data:
            await port.write(msg.data)
