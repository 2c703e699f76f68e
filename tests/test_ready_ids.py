"""The registry's READY ids (what a create samples from on big fleets) are
kept between calls and follow every change of status and membership
(controller/domain/node_registry/registry.py). The loop-side steps are called
directly: no session or database is needed for what they change here."""

from __future__ import annotations

from controller.domain.node_registry.live import DOWN
from controller.domain.node_registry.registry import NodeRegistry


def test_ready_ids_follow_status_changes_and_deletes() -> None:
    reg = NodeRegistry(grace_seconds=10, heartbeat_seconds=1)
    a, b = reg._get("node-a"), reg._get("node-b")
    assert reg.ready_ids() == ()
    reg._seen(a)  # a heartbeat: READY
    assert reg.ready_ids() == ("node-a",)
    assert reg.ready_ids() is reg.ready_ids()  # kept, not made again per create
    reg._seen(b)
    assert sorted(reg.ready_ids()) == ["node-a", "node-b"]
    reg._set_status(a, DOWN)
    assert reg.ready_ids() == ("node-b",)
    reg._forget("node-b")
    assert reg.ready_ids() == ()
