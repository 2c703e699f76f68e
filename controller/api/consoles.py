"""The console RPCs of ComputeService (AttachConsole, GetConsoleOutput):
the public end of a console relay (controller/domain/node_registry/consoles.py)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

from controller import validation as v
from controller.api.console_forward import ConsoleForwarder
from controller.auth.interceptor import CallContext
from controller.domain.consoles import Consoles
from controller.domain.node_registry.consoles import Console, HeldElsewhere
from controller.errors import InvalidArgument, Unavailable
from kumo.v1 import compute_pb2 as pb

MAX_INPUT = 64 * 1024
MODES = (pb.CONSOLE_MODE_READ_ONLY, pb.CONSOLE_MODE_READ_WRITE)


def _pump_input(requests: Iterator[pb.AttachConsoleRequest], console: Console, write: bool) -> None:
    """The user's input, on a thread of its own while the RPC's thread sends
    output. The client closing its side ends nothing (a follower sends only
    the first message); cancelling the call ends the console."""
    try:
        for msg in requests:
            if not msg.data:
                continue
            if not write:
                console.fail(InvalidArgument("a read-only console takes no input (data)"))
                return
            if len(msg.data) > MAX_INPUT:
                console.fail(InvalidArgument(f"data must be at most {MAX_INPUT} bytes a message"))
                return
            console.send(msg.data)
    except Exception:  # the call ended (cancelled, or a malformed message)
        console.close()


class ConsoleApi:
    def __init__(self, consoles: Consoles, forwarder: ConsoleForwarder) -> None:
        self.consoles = consoles
        self.forwarder = forwarder

    def output(
        self, request: pb.GetConsoleOutputRequest, context: CallContext
    ) -> pb.GetConsoleOutputResponse:
        instance_id = v.resource_id(request.id)
        forwardable = self.forwarder.forwardable(context)
        try:
            text = self.consoles.output(context.principal, instance_id, request.tail_lines, forwardable)
        except HeldElsewhere as away:
            try:
                return self.forwarder.output(away, context, request)
            except Unavailable:  # that controller is unreachable: the last report the node sent
                text = self.consoles.output(context.principal, instance_id, request.tail_lines)
        return pb.GetConsoleOutputResponse(output=text)

    def attach(
        self, requests: Iterator[pb.AttachConsoleRequest], context: CallContext
    ) -> Iterator[pb.AttachConsoleResponse]:
        first = next(requests, None)
        if first is None:
            raise InvalidArgument("the first message must name the instance (id) and the mode")
        instance_id = v.resource_id(first.id)
        if first.mode not in MODES:
            raise InvalidArgument("mode must be CONSOLE_MODE_READ_ONLY or CONSOLE_MODE_READ_WRITE")
        write = first.mode == pb.CONSOLE_MODE_READ_WRITE
        if first.data and not write:
            raise InvalidArgument("a read-only console takes no input (data)")
        if len(first.data) > MAX_INPUT:
            raise InvalidArgument(f"data must be at most {MAX_INPUT} bytes a message")
        try:
            console = self.consoles.attach(context.principal, instance_id, write, first.tail_bytes)
        except HeldElsewhere as away:
            if not self.forwarder.forwardable(context):
                raise
            yield from self.forwarder.attach(away, context, first, requests)
            return
        try:
            context.add_callback(console.close)  # the client cancelled or went away
            console.send(first.data)
            threading.Thread(
                target=_pump_input, args=(requests, console, write), name="console-input", daemon=True
            ).start()
            for chunk in console.output():
                yield pb.AttachConsoleResponse(data=chunk)
        finally:
            console.close()
