"""A session recomputes its node's desired state once per RESYNC_INTERVAL
slot at most, and the slots are the same for every session, so the nodes one
burst changes are read together (controller/domain/node_registry/live.py)."""

from __future__ import annotations

import asyncio
import time

from controller.domain.node_registry.live import RESYNC, RESYNC_INTERVAL, Session, next_resync_slot


def test_a_slot_ends_after_now_and_within_one_interval() -> None:
    for now in (0.0, 0.1, RESYNC_INTERVAL - 1e-9, RESYNC_INTERVAL, 12345.678):
        slot = next_resync_slot(now)
        assert now < slot <= now + RESYNC_INTERVAL
        assert abs(slot / RESYNC_INTERVAL - round(slot / RESYNC_INTERVAL)) < 1e-9


def test_sessions_that_recomputed_in_one_slot_wait_for_the_same_instant() -> None:
    async def run() -> None:
        for _ in range(10):  # again if the two straddled a slot's end (a loaded machine)
            a, b = Session("node-a", "peer-a"), Session("node-b", "peer-b")
            start = time.monotonic()
            a.resynced()
            await asyncio.sleep(0.02)  # not a wait: two recomputes at different times
            b.resynced()
            if next_resync_slot(start) == next_resync_slot(time.monotonic()):
                break
        assert a.next_resync == b.next_resync
        # A change in the same slot: both wait for its end, then go together.
        a.request_resync()
        b.request_resync()
        assert a.outbox.empty() and b.outbox.empty()
        got = await asyncio.wait_for(asyncio.gather(a.outbox.get(), b.outbox.get()), RESYNC_INTERVAL * 4)
        assert got == [RESYNC, RESYNC]
        assert time.monotonic() >= a.next_resync

    asyncio.run(run())


def test_a_change_after_a_quiet_slot_goes_at_once() -> None:
    async def run() -> None:
        s = Session("node-a", "peer-a")
        s.resynced()
        await asyncio.sleep(s.next_resync - time.monotonic() + 0.01)
        s.request_resync()
        assert s.outbox.get_nowait() is RESYNC
        # A second request before the session took it changes nothing.
        s.request_resync()
        assert s.outbox.empty()

    asyncio.run(run())
