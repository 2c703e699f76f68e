"""Console relays: a user's console stream joined to the node's, through the
controller (the node dials the controller; the controller never dials nodes).

The public RPC asks for a console; the relay queues a ConsoleOpen on the
node's session and waits for the node to open a ConsoleStream naming it.
Bytes then flow through a `Console`: node -> user through a thread-safe
queue (the public port's RPCs run on threads), user -> node through an
asyncio queue on the node server's loop. One writer (interactive console)
per instance per controller; readers follow the log, any number of them."""

from __future__ import annotations

import asyncio
import queue
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

from controller.domain.node_registry.registry import NodeRegistry
from controller.errors import FailedPrecondition, KumoError, NotFound, ResourceExhausted, Unavailable
from kumo.v1 import node_agent_pb2 as pb

# How long a node may take to answer a ConsoleOpen with its ConsoleStream.
OPEN_TIMEOUT = 10.0
# Consoles open at once on one controller (each holds a public RPC thread).
MAX_CONSOLES = 32
# Output chunks waiting for a slow user before the console is dropped.
BACKLOG = 4096

_END = object()


@dataclass(eq=False)
class Console:
    console_id: str
    node_id: str
    instance_id: str
    kind: int
    loop: asyncio.AbstractEventLoop
    # Why the node could not open it ("" when it did); set once it answered.
    ready: asyncio.Future[str] = field(init=False)
    to_node: asyncio.Queue[bytes | None] = field(default_factory=asyncio.Queue)
    to_user: queue.Queue[object] = field(default_factory=lambda: queue.Queue(BACKLOG))
    closed: bool = False

    def __post_init__(self) -> None:
        self.ready = self.loop.create_future()

    # The user's side (public RPC threads)

    def output(self, deadline: float | None = None) -> Iterator[bytes]:
        """The node's output until the console ends; raises why it failed, if
        it did, or Unavailable at `deadline` (time.monotonic)."""
        while True:
            try:
                item = self.to_user.get(timeout=None if deadline is None else deadline - time.monotonic())
            except (queue.Empty, ValueError):  # ValueError: the deadline has passed
                raise Unavailable("the node was too slow sending the console") from None
            if item is _END:
                return
            if isinstance(item, KumoError):
                raise item
            assert isinstance(item, bytes)
            yield item

    def send(self, data: bytes) -> None:
        if data and not self.closed:
            self.loop.call_soon_threadsafe(self.to_node.put_nowait, data)

    def fail(self, error: KumoError) -> None:
        """Ends the user's side with an error (bad input)."""
        self._to_user(error)
        self.close()

    def close(self) -> None:
        """The user is done: the node's stream ends too."""
        if not self.closed:
            self.closed = True
            try:
                self.loop.call_soon_threadsafe(self.to_node.put_nowait, None)
            except RuntimeError:
                pass  # the loop is stopping
        self._to_user(_END)

    # The node's side (on the loop)

    def from_node(self, data: bytes) -> None:
        if data and not self._to_user(data):
            self.fail(Unavailable("the console reader fell too far behind", reason="CONSOLE_TOO_SLOW"))

    def node_ended(self) -> None:
        self._to_user(_END)
        self.to_node.put_nowait(None)

    def _to_user(self, item: object) -> bool:
        try:
            self.to_user.put_nowait(item)
            return True
        except queue.Full:
            return False


class HeldElsewhere(Unavailable):
    """The node's session is on another live controller (the public API
    relays the console through it; see controller/api/console_forward.py)."""

    def __init__(self, controller_id: str, endpoint: str) -> None:
        super().__init__(
            f"the instance's node has its session on controller {controller_id} "
            f"({endpoint}): open the console through that controller",
            reason="NODE_ON_OTHER_CONTROLLER",
        )
        self.controller_id = controller_id
        self.endpoint = endpoint


class ConsoleRelay:
    """The consoles being opened or open on this controller."""

    def __init__(
        self, registry: NodeRegistry, open_timeout: float = OPEN_TIMEOUT, limit: int = MAX_CONSOLES
    ) -> None:
        self._registry = registry
        self._open_timeout = open_timeout
        self._limit = limit
        self._consoles: dict[str, Console] = {}
        self._writers: dict[str, Console] = {}  # instance id -> its interactive console

    # From public RPC threads

    def open(
        self, node_id: str, instance_id: str, kind: int, tail_bytes: int, timeout: float | None = None
    ) -> Console:
        """Asks the node for the console and waits (`timeout`, default
        OPEN_TIMEOUT) until it answered."""
        loop = self._registry.loop
        if loop is None or loop.is_closed():
            raise Unavailable("the node server is not running", reason="NODE_NOT_CONNECTED")
        wait = self._open_timeout if timeout is None else timeout
        future = asyncio.run_coroutine_threadsafe(
            self._open(node_id, instance_id, kind, tail_bytes, wait), loop
        )
        try:
            return future.result(wait + 5)
        except TimeoutError:  # the loop itself is stuck
            future.cancel()
            raise Unavailable("the node server did not answer", reason="CONSOLE_UNAVAILABLE") from None

    def log(self, node_id: str, instance_id: str, limit: int, timeout: float) -> bytes:
        """The last `limit` bytes of the node's console log, now."""
        console = self.open(node_id, instance_id, pb.CONSOLE_KIND_LOG, limit, timeout)
        out = bytearray()
        try:
            for chunk in console.output(time.monotonic() + timeout):
                out += chunk
        finally:
            console.close()
        return bytes(out[-limit:])

    # On the loop

    async def _open(
        self, node_id: str, instance_id: str, kind: int, tail_bytes: int, timeout: float
    ) -> Console:
        if len(self._consoles) >= self._limit:
            raise ResourceExhausted(
                f"this controller has {self._limit} consoles open; try again later", reason="CONSOLE_LIMIT"
            )
        interactive = kind == pb.CONSOLE_KIND_INTERACTIVE
        if interactive and instance_id in self._writers:
            raise FailedPrecondition(
                "someone else has this instance's console open for writing; "
                "attach read-only, or try again when they leave",
                reason="CONSOLE_IN_USE",
            )
        console = Console(uuid.uuid4().hex, node_id, instance_id, kind, asyncio.get_running_loop())
        ask = pb.ConsoleOpen(
            console_id=console.console_id, instance_id=instance_id, kind=kind, tail_bytes=tail_bytes
        )
        if not self._registry.send(node_id, pb.SessionResponse(console_open=ask)):
            elsewhere = self._registry.held_elsewhere(node_id)
            if elsewhere is not None:
                raise HeldElsewhere(*elsewhere)
            raise Unavailable(
                "the instance's node is not connected to this controller", reason="NODE_NOT_CONNECTED"
            )
        self._consoles[console.console_id] = console
        if interactive:
            self._writers[instance_id] = console
        try:
            error = await asyncio.wait_for(asyncio.shield(console.ready), timeout)
        except TimeoutError:
            self.release(console)
            raise Unavailable(
                f"the node did not open the console within {timeout:g} s",
                reason="CONSOLE_UNAVAILABLE",
            ) from None
        except BaseException:  # cancelled: the asking thread gave up
            self.release(console)
            raise
        if error:
            self.release(console)
            raise FailedPrecondition(
                f"the node cannot open the console: {error}", reason="CONSOLE_UNAVAILABLE"
            )
        return console

    def bind(self, node_id: str, console_id: str, error: str) -> Console:
        """The node's ConsoleStream arrived for a console it was asked for."""
        console = self._consoles.get(console_id)
        if console is None or console.node_id != node_id or console.ready.done():
            raise NotFound(f"console {console_id[:40]!r} not found", reason="CONSOLE_NOT_FOUND")
        console.ready.set_result(error[:500] or "")
        return console

    def release(self, console: Console) -> None:
        """The console is over: forget it (on the loop)."""
        self._consoles.pop(console.console_id, None)
        if self._writers.get(console.instance_id) is console:
            del self._writers[console.instance_id]
        if not console.ready.done():
            console.ready.set_result("the node's stream ended")
        console.node_ended()
