"""The interactive serial console in the browser: xterm.js talks to this
websocket, which relays to ComputeService.AttachConsole with the session's
token (bytes both ways). A cross-site page cannot open it: the Origin must
be this dashboard's, and the session's CSRF token must come in the URL."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Iterator

import grpc
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from dashboard.sessions import COOKIE
from dashboard.web import Web
from kumo.errorinfo import describe_rpc_error
from kumo.v1 import compute_pb2 as pb

POLICY_VIOLATION = 1008


def routes(web: Web) -> list[WebSocketRoute]:
    async def console_ws(ws: WebSocket) -> None:
        session = web.store.get(ws.cookies.get(COOKIE, ""))
        host = ws.headers.get("host", "")
        origin_ok = ws.headers.get("origin", "") == f"https://{host}"
        if session is None or not origin_ok or not session.csrf_ok(ws.query_params.get("csrf", "")):
            await ws.close(code=POLICY_VIOLATION)
            return
        await ws.accept()
        loop = asyncio.get_running_loop()
        inputs: queue.Queue[bytes | None] = queue.Queue()
        outputs: asyncio.Queue[bytes | str | None] = asyncio.Queue()
        # A reader watches (read-only); a member types too. The API decides either way.
        mode = pb.CONSOLE_MODE_READ_WRITE if session.can_write else pb.CONSOLE_MODE_READ_ONLY
        first = pb.AttachConsoleRequest(id=ws.path_params["id"], mode=mode)

        def requests() -> Iterator[pb.AttachConsoleRequest]:
            yield first
            while (data := inputs.get()) is not None:
                yield pb.AttachConsoleRequest(data=data)

        call = session.client.compute.AttachConsole(requests(), timeout=None)

        def read() -> None:
            try:
                for msg in call:
                    loop.call_soon_threadsafe(outputs.put_nowait, msg.data)
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.CANCELLED:
                    loop.call_soon_threadsafe(outputs.put_nowait, f"\r\n[{describe_rpc_error(exc)}]\r\n")
            finally:
                loop.call_soon_threadsafe(outputs.put_nowait, None)

        threading.Thread(target=read, name="console-relay", daemon=True).start()

        async def to_browser() -> None:
            while (item := await outputs.get()) is not None:
                if isinstance(item, str):
                    await ws.send_text(item)
                else:
                    await ws.send_bytes(item)

        async def from_browser() -> None:
            try:
                while True:
                    msg = await ws.receive()
                    if msg["type"] == "websocket.disconnect":
                        return
                    data = msg.get("bytes") or (msg.get("text") or "").encode()
                    if data:
                        inputs.put(data)
            except WebSocketDisconnect:
                return

        sender = asyncio.ensure_future(to_browser())
        receiver = asyncio.ensure_future(from_browser())
        try:
            await asyncio.wait([sender, receiver], return_when=asyncio.FIRST_COMPLETED)
        finally:
            inputs.put(None)
            call.cancel()
            for task in (sender, receiver):
                task.cancel()
            try:
                await ws.close()
            except RuntimeError:
                pass  # already closed by the browser

    return [WebSocketRoute("/servers/{id}/console/ws", console_ws)]
