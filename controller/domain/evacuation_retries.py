"""When the HA pass tries again to move an instance that could not move.

Without it the pass retried every such instance on every pass (scheduling
it each time, for nothing while nothing changed). Each failure doubles the
instance's wait, from two passes up to a cap; the wait ends early when the
fleet's capacity grew (a node came back or was added, enabled, or freed
room: what could let the move succeed now), and is forgotten once it moved.
The reason is said (fault, event) once per distinct reason, not per try.
In memory: a restarted controller starts afresh (it retries at once, and the
instance's fault, unchanged, is not said again)."""

from __future__ import annotations

from dataclasses import dataclass

from controller.domain.scheduler import Candidate, Ratios

Capacity = dict[str, tuple[float, float, float]]  # node id -> free vCPUs, MiB, GiB


def capacity(candidates: list[Candidate], ratios: Ratios) -> Capacity:
    """What the nodes that take instances have free."""
    return {c.node_id: c.free(ratios) for c in candidates if c.ready and c.enabled and not c.maintenance}


def grew(before: Capacity, now: Capacity) -> bool:
    """A node takes instances that did not, or has more of something free."""
    return any(
        node_id not in before or any(n > b for n, b in zip(free, before[node_id], strict=True))
        for node_id, free in now.items()
    )


@dataclass
class _Wait:
    until: float
    delay: float
    seen: Capacity  # the capacity when it last failed
    reason: str  # what was said about it


class Retries:
    def __init__(self, first: float, cap: float) -> None:
        self.first = first
        self.cap = max(cap, first)
        self._waits: dict[str, _Wait] = {}

    def due(self, instance_id: str, now: float, free: Capacity) -> tuple[bool, bool]:
        """(try it now?, early: its wait cut short because capacity grew)."""
        wait = self._waits.get(instance_id)
        if wait is None or now >= wait.until:
            return True, False
        if grew(wait.seen, free):
            return True, True
        return False, False

    def said(self, instance_id: str) -> str:
        """The reason already recorded for this instance's failures ("": none)."""
        wait = self._waits.get(instance_id)
        return wait.reason if wait is not None else ""

    def failed(self, instance_id: str, now: float, free: Capacity, reason: str) -> float:
        """Its next wait (seconds), twice the last one, at most the cap."""
        wait = self._waits.get(instance_id)
        delay = self.first if wait is None else min(wait.delay * 2, self.cap)
        self._waits[instance_id] = _Wait(now + delay, delay, free, reason)
        return delay

    def forget(self, instance_id: str) -> None:
        """It moved (or is no longer the pass's to move)."""
        self._waits.pop(instance_id, None)

    def keep_only(self, instance_ids: set[str]) -> None:
        """Drops the waits of instances no longer on a lost node (deleted, moved by hand)."""
        for iid in [i for i in self._waits if i not in instance_ids]:
            del self._waits[iid]
