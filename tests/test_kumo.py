"""The shared `kumo` package without a controller: the join-token format,
desired-state deltas, keys and CSRs, ErrorInfo decoding, ids, log formats and
the client's stubs."""

from __future__ import annotations

import json
import logging
import stat
import uuid
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from kumo import desired as ds
from kumo import jointoken, keys
from kumo.client import Client
from kumo.errorinfo import error_reason
from kumo.ids import is_uuid
from kumo.logs import JsonFormatter, TextFormatter
from kumo.v1 import node_agent_pb2 as pb
from kumo.v1 import node_pb2

FP = "a" * 64


def test_join_token_round_trip() -> None:
    tid, secret = str(uuid.uuid4()), jointoken.new_secret()
    token = jointoken.format_token(tid, secret, FP)
    parsed = jointoken.parse_token(f"  {token}\n")
    assert (parsed.token_id, parsed.secret, parsed.ca_fingerprint) == (tid, secret, FP)
    assert jointoken.secret_matches(secret, jointoken.hash_secret(secret))
    assert not jointoken.secret_matches(jointoken.new_secret(), jointoken.hash_secret(secret))


@pytest.mark.parametrize(
    "token",
    [
        "",
        "kumojoin1",
        f"kumojoin2.{uuid.uuid4()}.{'s' * 43}.{FP}",
        f"kumojoin1.not-a-uuid.{'s' * 43}.{FP}",
        f"kumojoin1.{uuid.uuid4()}.short.{FP}",
        f"kumojoin1.{uuid.uuid4()}.{'s' * 43}.{'A' * 64}",
        f"kumojoin1.{uuid.uuid4()}.{'s' * 43}.{'a' * 63}",
        f"kumojoin1.{uuid.uuid4()}.{'s' * 43}.{FP}.extra",
        f"kumojoin1.{str(uuid.uuid4()).upper()}.{'s' * 43}.{FP}",
    ],
)
def test_malformed_join_tokens(token: str) -> None:
    with pytest.raises(jointoken.JoinTokenFormatError):
        jointoken.parse_token(token)


def test_node_level_delta_and_apply() -> None:
    old = pb.NodeDesiredState(enabled=True)
    _, removed, changed = ds.diff(old, pb.NodeDesiredState(enabled=True))
    assert not changed and not removed
    new = pb.NodeDesiredState(enabled=False)
    delta, removed, changed = ds.diff(old, new)
    assert changed and delta == new
    update = pb.DesiredStateUpdate(revision=2, base_revision=1, state=delta, removed_ids=removed)
    assert ds.apply(old, update) == new
    full = pb.DesiredStateUpdate(revision=3, full=True, state=pb.NodeDesiredState(enabled=True))
    assert ds.apply(new, full) == pb.NodeDesiredState(enabled=True)


def test_resource_list_delta_and_apply() -> None:
    """The same helpers on a message with a repeated, id-bearing field (what
    instances, volumes ... will be): upserts and removals round-trip."""
    n = [node_pb2.Node(id=f"id-{i}", name=f"n{i}") for i in range(4)]
    old = node_pb2.ListNodesResponse(nodes=[n[0], n[1], n[2]], next_page_token="a")
    changed_1 = node_pb2.Node(id="id-1", name="renamed")
    new = node_pb2.ListNodesResponse(nodes=[n[0], changed_1, n[3]], next_page_token="b")
    delta, removed, changed = ds.diff(old, new)
    assert changed
    assert [m.id for m in delta.nodes] == ["id-1", "id-3"] and removed == ["id-2"]
    assert delta.next_page_token == "b"
    applied = ds.apply_delta(old, delta, removed)
    assert sorted(applied.nodes, key=lambda m: m.id) == sorted(new.nodes, key=lambda m: m.id)
    assert applied.next_page_token == "b"
    assert ds.diff(new, applied)[2] is False


def test_every_new_secret_makes_a_valid_token() -> None:
    for _ in range(50):
        tid, secret = str(uuid.uuid4()), jointoken.new_secret()
        assert jointoken.parse_token(jointoken.format_token(tid, secret, FP)).secret == secret


def test_join_token_errors_say_which_part_is_wrong() -> None:
    good = f"kumojoin1.{uuid.uuid4()}.{'s' * 43}.{FP}"
    assert jointoken.parse_token(good).ca_fingerprint == FP
    for bad, part in [
        (good.replace("kumojoin1", "kumo"), "looks like"),
        (f"kumojoin1.x.{'s' * 43}.{FP}", "id"),
        (f"kumojoin1.{uuid.uuid4()}.s!{'s' * 41}.{FP}", "secret"),
        (f"kumojoin1.{uuid.uuid4()}.{'s' * 43}.{'g' * 64}", "fingerprint"),
    ]:
        with pytest.raises(jointoken.JoinTokenFormatError, match=part):
            jointoken.parse_token(bad)


def _instances(*pairs: tuple[str, str]) -> list[pb.DesiredInstance]:
    return [pb.DesiredInstance(id=i, hostname=h) for i, h in pairs]


def test_desired_state_update_round_trip_with_removals() -> None:
    """What the controller's diff sends, the node's apply turns into exactly the new state."""
    old = pb.NodeDesiredState(enabled=True, instances=_instances(("a", "a"), ("b", "b"), ("c", "c")))
    new = pb.NodeDesiredState(enabled=False, instances=_instances(("a", "a"), ("c", "c2"), ("d", "d")))
    delta, removed, changed = ds.diff(old, new)
    assert changed and removed == ["b"]
    assert [m.id for m in delta.instances] == ["c", "d"] and delta.enabled is False
    update = pb.DesiredStateUpdate(revision=5, base_revision=4, state=delta, removed_ids=removed)
    applied = ds.apply(old, update)
    assert applied == new
    assert [m.id for m in old.instances] == ["a", "b", "c"], "apply must not change its input"


def test_apply_sorts_resources_by_id_and_ignores_unknown_removals() -> None:
    current = pb.NodeDesiredState(instances=_instances(("m", "m")))
    delta = pb.NodeDesiredState(instances=_instances(("z", "z"), ("b", "b")))
    out = ds.apply_delta(current, delta, ["not-there"])
    assert [m.id for m in out.instances] == ["b", "m", "z"]


def test_full_update_replaces_everything() -> None:
    current = pb.NodeDesiredState(enabled=True, instances=_instances(("a", "a")))
    full = pb.DesiredStateUpdate(revision=9, full=True, state=pb.NodeDesiredState(enabled=False))
    out = ds.apply(current, full)
    assert out == pb.NodeDesiredState(enabled=False) and out is not full.state


def test_key_csr_and_private_file(tmp_path: Path) -> None:
    key = keys.new_key()
    csr = x509.load_pem_x509_csr(keys.make_csr(key, "node-1"))
    assert csr.is_signature_valid
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "node-1"
    path = tmp_path / "sub" / "node.key"
    keys.write_private(path, keys.key_pem(key))
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not path.with_suffix(".key.tmp").exists()


class _FakeError(grpc.RpcError, grpc.Call):  # type: ignore[misc]
    """An RpcError as a channel raises it, carrying `details` in its trailers."""

    def __init__(self, details: list[Any]) -> None:
        self._status = status_pb2.Status(code=code_pb2.NOT_FOUND, message="gone")
        for d in details:
            packed = any_pb2.Any()
            packed.Pack(d)
            self._status.details.append(packed)

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.NOT_FOUND

    def details(self) -> str:
        return "gone"

    def trailing_metadata(self) -> Any:
        return (
            (("grpc-status-details-bin", self._status.SerializeToString()),) if self._status.details else ()
        )

    def initial_metadata(self) -> Any:
        return ()

    def is_active(self) -> bool:
        return False

    def time_remaining(self) -> float | None:
        return None

    def cancel(self) -> bool:
        return False

    def add_callback(self, callback: Any) -> bool:
        return False


def test_error_reason_reads_error_info() -> None:
    info = error_details_pb2.ErrorInfo(reason="NODE_NOT_FOUND", domain="kumo.cloud")
    other = error_details_pb2.DebugInfo(detail="x")
    assert error_reason(_FakeError([other, info])) == "NODE_NOT_FOUND"
    assert error_reason(_FakeError([other])) == ""
    assert error_reason(_FakeError([])) == ""


def test_is_uuid() -> None:
    u = str(uuid.uuid4())
    assert is_uuid(u) and is_uuid(u.upper()) and is_uuid(u.replace("-", ""))
    assert not is_uuid("") and not is_uuid("web-1") and not is_uuid(u[:-1])


def test_log_formats_carry_extras() -> None:
    record = logging.makeLogRecord(
        {"name": "kumo.test", "levelname": "WARNING", "msg": "node %s down", "args": ("n1",), "node_id": "n1"}
    )
    line = json.loads(JsonFormatter().format(record))
    assert (line["level"], line["logger"], line["msg"], line["node_id"]) == (
        "warning",
        "kumo.test",
        "node n1 down",
        "n1",
    )
    assert line["ts"].endswith("Z")
    assert TextFormatter().format(record).endswith("kumo.test: node n1 down  node_id=n1")


class _RecordingStub:
    """Stands in for a generated stub: records what each call was given."""

    def __init__(self, channel: Any) -> None:
        self.channel = channel
        self.calls: list[tuple[str, Any, dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        return lambda request, **kw: self.calls.append((name, request, kw)) or len(self.calls)


def test_client_stubs_carry_token_and_timeout() -> None:
    made: list[_RecordingStub] = []

    def stub_cls(channel: Any) -> _RecordingStub:
        made.append(_RecordingStub(channel))
        return made[-1]

    channel = object()
    client = Client(channel, "tok", timeout=7)  # type: ignore[arg-type]
    assert client.stub(stub_cls).ListThings("req") == 1
    assert made[0].channel is channel
    assert made[0].calls == [
        ("ListThings", "req", {"metadata": [("authorization", "Bearer tok")], "timeout": 7})
    ]
    client.stub(stub_cls).GetThing("r2", metadata=[("x", "y")], timeout=1)
    assert made[1].calls[0][2] == {"metadata": [("x", "y")], "timeout": 1}
    anonymous = Client(channel, "")  # type: ignore[arg-type]
    anonymous.stub(stub_cls).Authenticate("r3")
    assert made[2].calls[0][2]["metadata"] == [] and anonymous.metadata == []
