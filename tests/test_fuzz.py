"""A fuzzer over every RPC of every kumo.v1 service (from the descriptors, so
new RPCs are covered without a list), on each port that serves it: raw garbage
bytes, invalid UTF-8 in string fields, and random messages built from the
descriptor, sent as an admin, a member and (garbage only) nobody. Bad input
must answer a canonical code, never INTERNAL or UNKNOWN, never hang, and never
log an error-level line or a traceback in the controller. Seeded, and bounded
per RPC (KUMO_FUZZ_CALLS random messages each, KUMO_FUZZ_SEED the seed)."""

from __future__ import annotations

import base64
import json
import os
import random
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import descriptor
from google.protobuf.message import Message

from tests.harness import Client, ControllerProc, make_user
from tests.nodeutil import enroll, make_token, node_channel
from tests.rpcs import Rpc, all_rpcs

# Health's Watch answers until the client leaves, by design: a deadline is its only end.
ENDLESS = {"/grpc.health.v1.Health/Watch"}


def grpc_own_rpcs() -> list[Rpc]:
    """Health and reflection, which both ports serve too."""
    from google.protobuf import message_factory
    from grpc_health.v1 import health_pb2
    from grpc_reflection.v1alpha import reflection_pb2

    out = []
    for module in (health_pb2, reflection_pb2):
        for service in module.DESCRIPTOR.services_by_name.values():
            for m in service.methods:
                path = f"/{service.full_name}/{m.name}"
                if path not in ENDLESS:
                    cls = message_factory.GetMessageClass(m.input_type)
                    out.append(Rpc(path, m.client_streaming, m.server_streaming, cls, m))
    return out


SEED = int(os.environ.get("KUMO_FUZZ_SEED", "19"))
RANDOM_CALLS = int(os.environ.get("KUMO_FUZZ_CALLS", "10"))
DEADLINE = 15.0
BAD_CODES = {
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DATA_LOSS,
}
F = descriptor.FieldDescriptor


def _token(values: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


# Page tokens of the right shape but the wrong types, and ones that do not decode at all.
BAD_PAGE_TOKENS = [
    _token(["x", []]),
    _token([[1, 2], "x"]),
    _token([{}, str(uuid.uuid4())]),
    _token([None, None]),
    _token([1.5, True]),
    _token(["x", "y", "z"]),
    _token([2**70, "x"]),
    _token(["2026-01-01T00:00:00", str(uuid.uuid4())]),
    _token(["x"]),
    _token(["x\x00", "y"]),  # PostgreSQL refuses NUL characters
    _token(["\ud800", str(uuid.uuid4())]),  # not UTF-8 once decoded
    "!!!",
    "e30",
]


@dataclass
class Finding:
    rpc: str
    who: str
    port: str
    kind: str
    code: str
    details: str
    request: bytes

    def __str__(self) -> str:
        return (
            f"{self.rpc} [{self.port}, {self.who}, {self.kind}] -> {self.code} {self.details!r}"
            f"\n    request={self.request[:160].hex()}"
        )


class Messages:
    """Random messages made from a descriptor: random field values, huge and
    negative numbers, long and odd strings, unknown enum values, nesting, and
    now and then a real id or name of this cloud."""

    def __init__(self, rng: random.Random, ids: list[str], names: list[str]) -> None:
        self.rng = rng
        self.strings = [
            "",
            "a",
            "x" * 300,
            "y" * 70_000,
            "名前-ü",
            "\x00",
            " lead",
            "-1",
            "0",
            "../../etc/passwd",
            "' OR 1=1 --",
            "%s%n",
            "UPPER",
            "a.b",
            "10.0.0.0/24",
            "fe80::/64",
            "10.0.0.999",
            "ssh-ed25519 AAAA",
            "*",
            str(uuid.uuid4()),
            str(uuid.uuid4()).upper(),
            *ids,
            *names,
        ]

        self.plausible = [*ids, *names, "fuzz-a", "fuzz-b", "10.9.0.0/24", "tcp", "ingress"]
        self.mild = False  # plausible values only: reach past the first field check

    def string(self, field: descriptor.FieldDescriptor) -> str:
        if field.name == "page_token" and self.rng.random() < 0.7:
            return self.rng.choice(BAD_PAGE_TOKENS)
        return self.rng.choice(self.plausible if self.mild else self.strings)

    def scalar(self, field: descriptor.FieldDescriptor) -> Any:
        rng, t = self.rng, field.type
        if self.mild and t not in (F.TYPE_STRING, F.TYPE_BOOL, F.TYPE_BYTES):
            if t == F.TYPE_ENUM:
                values = [v.number for v in field.enum_type.values if v.number]
                return rng.choice(values or [0])
            return rng.choice([1, 2, 8, 64, 1024])
        if t in (F.TYPE_INT32, F.TYPE_SINT32, F.TYPE_SFIXED32):
            return rng.choice([0, 1, -1, 2**31 - 1, -(2**31), rng.randint(-5000, 5000)])
        if t in (F.TYPE_INT64, F.TYPE_SINT64, F.TYPE_SFIXED64):
            return rng.choice([0, 1, -1, 2**63 - 1, -(2**63), 2**53 + 1, rng.randint(-(10**9), 10**9)])
        if t in (F.TYPE_UINT32, F.TYPE_FIXED32):
            return rng.choice([0, 1, 2**32 - 1, rng.randint(0, 5000)])
        if t in (F.TYPE_UINT64, F.TYPE_FIXED64):
            return rng.choice([0, 1, 2**64 - 1, rng.randint(0, 10**9)])
        if t in (F.TYPE_FLOAT, F.TYPE_DOUBLE):
            return rng.choice([0.0, -1.0, 0.5, 1e30, float("inf"), float("-inf"), float("nan")])
        if t == F.TYPE_BOOL:
            return rng.random() < 0.5
        if t == F.TYPE_ENUM:
            values = [v.number for v in field.enum_type.values]
            return rng.choice([*values, *values, 99, -1])
        if t == F.TYPE_STRING:
            return self.string(field)
        if t == F.TYPE_BYTES:
            return rng.randbytes(rng.choice([0, 1, 16, 300]))
        raise AssertionError(f"unhandled field type {t} of {field.full_name}")

    def fill(self, msg: Message, depth: int = 0) -> Message:
        rng = self.rng
        if msg.DESCRIPTOR.full_name == "google.protobuf.FieldMask":
            parent = [f.name for f in msg.DESCRIPTOR.fields]
            msg.paths.extend(rng.choice([*self.mask_paths, *parent, "", "no_such", "a.b"]) for _ in range(3))
            return msg
        for field in msg.DESCRIPTOR.fields:
            if rng.random() < 0.4:
                continue
            message_type = field.message_type
            if field.is_repeated:
                count = rng.choice([1, 2, 3, 40])
                target = getattr(msg, field.name)
                if message_type is not None and message_type.GetOptions().map_entry:
                    key_f, val_f = message_type.fields_by_name["key"], message_type.fields_by_name["value"]
                    for _ in range(count):
                        key = self.scalar(key_f)
                        if val_f.message_type is not None:
                            self.fill(target[key], depth + 1)
                        else:
                            target[key] = self.scalar(val_f)
                elif message_type is not None:
                    if depth < 3:
                        for _ in range(min(count, 3)):
                            self.fill(target.add(), depth + 1)
                else:
                    target.extend(self.scalar(field) for _ in range(count))
            elif message_type is not None:
                if depth < 4:
                    self.fill(getattr(msg, field.name), depth + 1)
            else:
                try:
                    setattr(msg, field.name, self.scalar(field))
                except ValueError:  # e.g. an unknown value of a closed enum
                    pass
        return msg

    mask_paths = ["name", "description", "enabled", "visibility", "properties", "size_gb", "min_disk_gb"]

    def random(self, cls: Any) -> bytes:
        """A random message: every other one with plausible values only."""
        self.mild = self.rng.random() < 0.5
        return self.fill(cls()).SerializeToString()

    def garbage(self) -> list[bytes]:
        return [b"\x0f", self.rng.randbytes(self.rng.randint(2, 64)), b"\xff" * 12]

    def bad_utf8(self, cls: Any) -> list[bytes]:
        """The request with each top-level string field set to invalid UTF-8
        (encoded by hand: protobuf will not serialize such a string)."""
        out = []
        for field in cls.DESCRIPTOR.fields:
            if field.type == F.TYPE_STRING:
                out.append(_varint(field.number << 3 | 2) + _varint(3) + b"a\xff\xfe")
            elif field.message_type is not None and not field.is_repeated:
                inner = next((f for f in field.message_type.fields if f.type == F.TYPE_STRING), None)
                if inner is not None:
                    body = _varint(inner.number << 3 | 2) + _varint(2) + b"\xc3\x28"
                    out.append(_varint(field.number << 3 | 2) + _varint(len(body)) + body)
        return out[:3]


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def call_raw(
    rpc: Rpc, channel: grpc.Channel, messages: list[bytes], metadata: list[tuple[str, str]]
) -> grpc.StatusCode:
    """Sends `messages` as they are (identity serializers); drains any answer
    stream. Returns OK or the error's code (raised errors are returned)."""
    ident: Callable[[bytes], bytes] = lambda b: b  # noqa: E731
    kw = {"metadata": metadata, "timeout": DEADLINE}
    if rpc.client_streaming and rpc.server_streaming:
        list(channel.stream_stream(rpc.path, ident, ident)(iter(messages), **kw))
    elif rpc.client_streaming:
        channel.stream_unary(rpc.path, ident, ident)(iter(messages), **kw)
    elif rpc.server_streaming:
        list(channel.unary_stream(rpc.path, ident, ident)(messages[0], **kw))
    else:
        channel.unary_unary(rpc.path, ident, ident)(messages[0], **kw)
    return grpc.StatusCode.OK


@dataclass
class Caller:
    who: str
    port: str
    channel: grpc.Channel
    metadata: list[tuple[str, str]]
    login: Callable[[], Client] | None = None

    def relogin(self) -> None:
        """A fresh token: random RevokeToken calls revoke the caller's own."""
        if self.login is not None:
            self.metadata = [("authorization", f"Bearer {self.login().token}")]


class Fuzzer:
    def __init__(self, rng: random.Random, gen: Messages) -> None:
        self.rng = rng
        self.gen = gen
        self.findings: list[Finding] = []
        self.calls = 0
        self.codes: dict[str, int] = {}

    def send(self, rpc: Rpc, caller: Caller, kind: str, messages: list[bytes]) -> grpc.StatusCode:
        self.calls += 1
        try:
            code = call_raw(rpc, caller.channel, messages, caller.metadata)
            details = ""
        except grpc.RpcError as exc:
            code, details = exc.code(), exc.details() or ""
        key = f"{caller.who}:{code.name}"
        self.codes[key] = self.codes.get(key, 0) + 1
        if code in BAD_CODES:
            self.findings.append(
                Finding(rpc.path, caller.who, caller.port, kind, code.name, details, b"|".join(messages))
            )
        return code

    def requests(self, rpc: Rpc, with_garbage: bool, random_calls: int) -> Iterator[tuple[str, list[bytes]]]:
        gen, cls = self.gen, rpc.request_cls
        if with_garbage:
            for raw in gen.garbage():
                yield "garbage", [raw]
            for raw in gen.bad_utf8(cls):
                yield "bad-utf8", [raw]
            if rpc.client_streaming:
                yield "garbage-after-valid", [gen.random(cls), b"\x0f"]
        for _ in range(random_calls):
            count = self.rng.randint(1, 3) if rpc.client_streaming else 1
            yield "random", [gen.random(cls) for _ in range(count)]

    def run(
        self, rpc: Rpc, caller: Caller, with_garbage: bool = True, random_calls: int = RANDOM_CALLS
    ) -> None:
        for kind, messages in self.requests(rpc, with_garbage, random_calls):
            self.send(rpc, caller, kind, messages)


def _served(rpc: Rpc, caller: Caller) -> bool:
    """Whether the port serves the RPC at all (an empty request is answered
    with anything but UNIMPLEMENTED)."""
    try:
        call_raw(rpc, caller.channel, [b""], caller.metadata)
    except grpc.RpcError as exc:
        return exc.code() != grpc.StatusCode.UNIMPLEMENTED
    return True


def _one_per_rpc(findings: list[Finding]) -> list[Finding]:
    """The first finding of each RPC, port and answer: enough to reproduce each."""
    seen: dict[tuple[str, str, str, str], Finding] = {}
    for f in findings:
        seen.setdefault((f.rpc, f.port, f.code, f.details[:40]), f)
    return list(seen.values())


ERROR_LINE = re.compile(r"^\d\d:\d\d:\d\d (error|critical) |^Traceback", re.MULTILINE)


def _controller_log(controller: ControllerProc) -> Path:
    return controller.data_dir.parent / f"{controller.data_dir.name}-controller.log"


def make_cloud(controller: ControllerProc, admin: Client) -> dict[str, Any]:
    """A project with a member, an image, a flavor, a network and a node: real
    ids and names the random messages pick from now and then."""
    from bench.procs import create_image
    from kumo.v1 import compute_pb2 as cpb
    from kumo.v1 import identity_pb2 as idpb
    from kumo.v1 import network_pb2 as netpb

    project = admin.identity.CreateProject(idpb.CreateProjectRequest(project=idpb.Project(name="fuzz")))
    user = make_user(admin, project.id, "fuzz-member", idpb.ROLE_MEMBER)
    member = controller.login("fuzz-member", "password-123")
    image = create_image(member, "fuzz-image")
    flavor = admin.compute.CreateFlavor(
        cpb.CreateFlavorRequest(flavor=cpb.Flavor(name="fuzz.small", vcpus=1, ram_mb=256, disk_gb=1))
    )
    network = member.networks.CreateNetwork(
        netpb.CreateNetworkRequest(network=netpb.Network(name="fuzz-net"))
    )
    node = enroll(controller, make_token(admin), "fuzz-node")
    ids = [project.id, user.id, image.id, flavor.id, network.id, node.node_id]
    names = ["fuzz", "fuzz-member", "fuzz-image", "fuzz.small", "fuzz-net", "fuzz-node"]
    return {"member": member, "node": node, "ids": ids, "names": names}


def test_every_rpc_answers_bad_input_with_a_canonical_code(controller: ControllerProc, admin: Client) -> None:
    fuzz(controller, admin, RANDOM_CALLS)


def test_bad_input_on_postgres(postgres: Any, tmp_path: Path) -> None:
    """PostgreSQL refuses what SQLite takes (NUL characters, out-of-range
    numbers): the same fuzz, shorter, on a real server."""
    data = tmp_path / "data"
    data.mkdir()
    proc = ControllerProc(data, extra_args=["--database-url", postgres.create_database("kumo_fuzz")]).start()
    try:
        fuzz(proc, proc.login(), max(2, RANDOM_CALLS // 3))
    finally:
        proc.stop()


def fuzz(controller: ControllerProc, admin: Client, random_calls: int) -> None:
    cloud = make_cloud(controller, admin)
    rng = random.Random(SEED)
    fuzzer = Fuzzer(rng, Messages(rng, cloud["ids"], cloud["names"]))
    public = controller.channel()
    node = cloud["node"]
    node_port = node_channel(controller, node.key_pem, node.cert_pem)
    member = Caller(
        "member",
        "public",
        public,
        [("authorization", f"Bearer {cloud['member'].token}")],
        lambda: controller.login("fuzz-member", "password-123"),
    )
    # The admin goes last: its random deletes and disables may end the member's access.
    callers = [
        Caller("anonymous", "public", public, []),
        member,
        Caller("admin", "public", public, [("authorization", f"Bearer {admin.token}")], controller.login),
    ]
    node_caller = Caller("node", "node", node_port, [])
    log_start = _controller_log(controller).stat().st_size
    rpcs = sorted([*all_rpcs(), *grpc_own_rpcs()], key=lambda r: r.path)
    assert len(rpcs) > 50
    try:
        # The node port's turn comes before the admin's random DeleteNode calls.
        for caller in callers:
            if caller.who == "admin":
                served = [rpc for rpc in rpcs if _served(rpc, node_caller)]
                assert {r.path.rsplit("/", 1)[1] for r in served} >= {
                    "Session",
                    "DownloadBlob",
                    "UploadSnapshot",
                }
                for rpc in served:
                    fuzzer.run(rpc, node_caller, random_calls=random_calls)
            for rpc in rpcs:
                fuzzer.run(rpc, caller, random_calls=1 if caller.who == "anonymous" else random_calls)
                if rpc.path.startswith("/kumo.v1.IdentityService/"):
                    caller.relogin()
    finally:
        public.close()
        node_port.close()
    errors = ERROR_LINE.findall(_controller_log(controller).read_text(errors="replace")[log_start:])
    kinds: dict[str, int] = {}
    for f in fuzzer.findings:
        key = f"{f.code} {f.details[:70]!r}"
        kinds[key] = kinds.get(key, 0) + 1
    summary = (
        f"{fuzzer.calls} calls (seed {SEED}), codes {dict(sorted(fuzzer.codes.items()))}, "
        f"{len(fuzzer.findings)} bad answers: {kinds}\n"
        + "\n".join(str(f) for f in _one_per_rpc(fuzzer.findings))
    )
    print(summary)
    assert not fuzzer.findings, summary
    assert not errors, f"the controller logged {len(errors)} error lines or tracebacks; see its log"
