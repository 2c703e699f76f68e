"""The node writer's encodings of usage and guests: the direct format is
json.dumps's text, and the per-node cache gives a new text whenever a
heartbeat's usage or guests changed (never the last one's)."""

from __future__ import annotations

import base64
import json
import random

from controller.domain.node_registry.writer import Encodings, _usage_fields, guests_text, usage_json
from kumo.v1 import node_agent_pb2 as apb
from kumo.v1 import node_pb2 as pb


def _usage(load: float, free: int = 1000) -> pb.NodeUsage:
    return pb.NodeUsage(
        memory_free_mb=free,
        disk_free_gb=50,
        load_1m=load,
        guests_running=2,
        guest_vcpus=4,
        guest_memory_mb=4096,
    )


def test_usage_json_is_what_json_dumps_writes() -> None:
    rng = random.Random(7)
    loads = [0.0, 0.25, 1e-300, 1e300, 3.0, -0.0, float("nan"), float("inf"), -float("inf")]
    loads += [rng.random() * 100 for _ in range(500)]
    for load in loads:
        u = pb.NodeUsage(
            memory_free_mb=rng.randint(-(2**40), 2**40),
            disk_free_gb=rng.randint(0, 10**6),
            load_1m=load,
            guests_running=rng.randint(0, 2**31 - 1),
            guest_vcpus=rng.randint(0, 999),
            guest_memory_mb=rng.randint(0, 2**40),
        )
        assert usage_json(u) == json.dumps(_usage_fields(u))
        assert json.loads(usage_json(u))["guest_vcpus"] == u.guest_vcpus
    assert usage_json(None) == "{}"


def _guests(*names: str, power: int = apb.GUEST_POWER_STATE_RUNNING) -> list[apb.GuestStatus]:
    # Parsed from the wire, as a heartbeat's are: new objects every time.
    hb = apb.Heartbeat(guests=[apb.GuestStatus(instance_id=n, vcpus=2, power_state=power) for n in names])
    return list(apb.Heartbeat.FromString(hb.SerializeToString()).guests)


def test_encodings_follow_every_change() -> None:
    enc = Encodings()
    assert enc.usage("n1", _usage(0.5)) == usage_json(_usage(0.5))
    assert enc.usage("n1", _usage(0.5)) == usage_json(_usage(0.5))  # equal: the same text
    assert enc.usage("n1", _usage(0.75)) == usage_json(_usage(0.75))
    assert enc.usage("n1", _usage(0.75, free=10)) == usage_json(_usage(0.75, free=10))
    assert enc.usage("n1", None) == "{}"
    # Another node's last usage is its own.
    assert enc.usage("n2", _usage(2.0)) == usage_json(_usage(2.0))
    assert enc.usage("n1", _usage(0.5)) == usage_json(_usage(0.5))

    assert enc.guests("n1", _guests("a", "b")) == guests_text(_guests("a", "b"))
    assert enc.guests("n1", _guests("a", "b")) == guests_text(_guests("a", "b"))
    stopped = _guests("a", "b", power=apb.GUEST_POWER_STATE_SHUTDOWN)
    assert enc.guests("n1", stopped) == guests_text(stopped) != guests_text(_guests("a", "b"))
    assert enc.guests("n1", _guests("a")) == guests_text(_guests("a"))
    assert enc.guests("n1", []) == guests_text([])
    round_trip = apb.Heartbeat.FromString(base64.b64decode(enc.guests("n1", _guests("c"))))
    assert [g.instance_id for g in round_trip.guests] == ["c"]


def test_forgotten_node_starts_afresh() -> None:
    enc = Encodings()
    enc.guests("n1", _guests("a"))
    enc.usage("n1", _usage(1.0))
    enc.forget("n1")
    assert enc.guests("n1", _guests("b")) == guests_text(_guests("b"))
    assert enc.usage("n1", _usage(1.0)) == usage_json(_usage(1.0))
