"""Node sessions' desired-state reads, made in batches: the reads asked for
while one batch is being made, or in the same pass of the event loop, go in
the next batch, one transaction for all its nodes (DesiredStates.for_nodes).

Why: a port created on a network changes the desired state of every node
with a port on it, and each of them would otherwise re-read every port of the
network and every member of its groups. In a batch those reads are made once.
Each state is still read whole, so a session sends its node exactly what the
database holds (the delta against what it last sent), whatever it missed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

from controller.domain.node_state import Built
from controller.errors import KumoError
from kumo.v1 import node_agent_pb2 as pb

# Nodes read in one transaction at most: a fleet reconnecting at once (see
# MAX_OPENING in api/node_agent.py) is read in several batches.
BATCH_NODES = 64


class DesiredBatches:
    """`state_of(node_id)` on the event loop; `read(node_ids)` runs on the loop's executor."""

    def __init__(self, read: Callable[[Iterable[str]], dict[str, Built]]) -> None:
        self.read = read
        self._waiting: dict[str, list[asyncio.Future[tuple[int, pb.NodeDesiredState]]]] = {}
        self._runner: asyncio.Task[None] | None = None

    async def state_of(self, node_id: str) -> tuple[int, pb.NodeDesiredState]:
        """The node's (revision, desired state), read in the next batch."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[tuple[int, pb.NodeDesiredState]] = loop.create_future()
        self._waiting.setdefault(node_id, []).append(done)
        if self._runner is None or self._runner.done():
            self._runner = loop.create_task(self._run(), name="desired-batches")
        return await done

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while self._waiting:
            await asyncio.sleep(0)  # the requests of this loop pass join the batch
            ids = list(self._waiting)[:BATCH_NODES]
            batch = {node_id: self._waiting.pop(node_id) for node_id in ids}
            try:
                built = await loop.run_in_executor(None, self.read, ids)
            except Exception as exc:  # every session of the batch ends (its node reconnects)
                for waiters in batch.values():
                    for w in waiters:
                        if not w.done():
                            w.set_exception(exc)
                continue
            for node_id, waiters in batch.items():
                result = built[node_id]
                for w in waiters:
                    if w.done():  # the session ended meanwhile
                        continue
                    if isinstance(result, KumoError):
                        w.set_exception(result)
                    else:
                        w.set_result(result)
