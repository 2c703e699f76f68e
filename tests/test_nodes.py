"""Nodes through the API: join tokens, enrollment, the admin's verbs, the node
session over mutual TLS, and what each of them refuses."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
import uuid
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from controller import pki
from kumo import jointoken, keys
from kumo.v1 import identity_pb2 as idpb
from kumo.v1 import node_agent_pb2 as apb
from kumo.v1 import node_agent_pb2_grpc, node_pb2_grpc
from kumo.v1 import node_pb2 as pb
from noded.enroll import JoinError, fetch_pinned_ca
from tests.harness import Client, ControllerProc, error_reason, make_user, rpc_error
from tests.nodeutil import SessionClient, enroll, hello, make_token, node_channel, nodes, wait_for

NIL = "00000000-0000-0000-0000-000000000000"


def count_nodes(admin: Client) -> int:
    return len(nodes(admin).ListNodes(pb.ListNodesRequest(page_size=1000)).nodes)


def token_row(admin: Client, token: str) -> pb.JoinToken:
    tid = jointoken.parse_token(token).token_id
    rows = nodes(admin).ListJoinTokens(pb.ListJoinTokensRequest(page_size=1000)).join_tokens
    return next(r for r in rows if r.id == tid)


# Join tokens


def test_token_carries_id_secret_and_ca_fingerprint(controller: ControllerProc, admin: Client) -> None:
    resp = nodes(admin).CreateJoinToken(
        pb.CreateJoinTokenRequest(join_token=pb.JoinToken(description="rack 1"))
    )
    parsed = jointoken.parse_token(resp.token)
    assert parsed.token_id == resp.join_token.id
    assert parsed.ca_fingerprint == resp.ca_fingerprint == controller.info["ca_fingerprint"]
    cert = x509.load_pem_x509_certificate(controller.ca_pem)
    assert parsed.ca_fingerprint == hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
    jt = resp.join_token
    assert jt.max_uses == 1 and jt.uses == 0 and jt.state == pb.JOIN_TOKEN_STATE_VALID
    assert jt.description == "rack 1" and jt.creator_user_id == admin.who.user_id
    assert 3590 < jt.expire_time.seconds - time.time() <= 3600  # default 1 h
    listed = nodes(admin).ListJoinTokens(pb.ListJoinTokensRequest(page_size=1000))
    assert parsed.secret.encode() not in listed.SerializeToString()


def test_only_a_hash_of_the_secret_is_stored(controller: ControllerProc, admin: Client) -> None:
    token = make_token(admin)
    parsed = jointoken.parse_token(token)
    db = sqlite3.connect(Path(controller.data_dir) / "kumo.db")
    try:
        (stored,) = db.execute(
            "SELECT secret_hash FROM join_token WHERE id = ?", (parsed.token_id,)
        ).fetchone()
        dump = "\n".join(db.iterdump())
    finally:
        db.close()
    assert stored == hashlib.sha256(parsed.secret.encode()).hexdigest()
    assert parsed.secret not in dump


@pytest.mark.parametrize(
    ("fields", "ttl", "fragment"),
    [
        ({"max_uses": -1}, None, "max_uses"),
        ({"max_uses": 100_001}, None, "max_uses"),
        ({"description": "x" * 256}, None, "description"),
        ({"description": "bad\x00"}, None, "control characters"),
        ({}, 0, "ttl"),
        ({}, -5, "ttl"),
        ({}, 31 * 86400, "ttl"),
    ],
)
def test_create_token_rejects_bad_fields(admin: Client, fields: dict, ttl: int | None, fragment: str) -> None:
    req = pb.CreateJoinTokenRequest(join_token=pb.JoinToken(**fields))
    if ttl is not None:
        req.ttl.seconds = ttl
    err = rpc_error(nodes(admin).CreateJoinToken, req)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
    assert fragment in err.details()


def test_delete_token(admin: Client) -> None:
    token = make_token(admin)
    tid = jointoken.parse_token(token).token_id
    nodes(admin).DeleteJoinToken(pb.DeleteJoinTokenRequest(id=tid))
    again = rpc_error(nodes(admin).DeleteJoinToken, pb.DeleteJoinTokenRequest(id=tid))
    assert again.code() == grpc.StatusCode.NOT_FOUND and error_reason(again) == "JOIN_TOKEN_NOT_FOUND"
    bad = rpc_error(nodes(admin).DeleteJoinToken, pb.DeleteJoinTokenRequest(id="nope"))
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT


# Enrollment


def test_enroll_issues_a_client_certificate_for_the_node(controller: ControllerProc, admin: Client) -> None:
    token = make_token(admin)
    e = enroll(controller, token, "enroll-happy")
    cert = x509.load_pem_x509_certificate(e.cert_pem)
    ca = x509.load_pem_x509_certificate(controller.ca_pem)
    cert.verify_directly_issued_by(ca)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == e.node_id
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    key = serialization.load_pem_private_key(e.key_pem, None)
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()  # type: ignore[union-attr]
    assert e.response.ca_pem.encode() == controller.ca_pem
    # The node port listens on 127.0.0.1 in tests, so that is where to go.
    assert e.response.node_endpoint == controller.node_endpoint

    node = nodes(admin).GetNode(pb.GetNodeRequest(id=e.node_id))
    assert node.name == "enroll-happy" and node.state == pb.NODE_STATE_DOWN and not node.connected
    assert node.certificate_serial == format(cert.serial_number, "x")
    assert node.join_token_id == jointoken.parse_token(token).token_id
    row = token_row(admin, token)
    assert row.uses == 1 and row.state == pb.JOIN_TOKEN_STATE_USED_UP


def _made_up(controller: ControllerProc, admin: Client) -> str:
    return jointoken.format_token(
        str(uuid.uuid4()), jointoken.new_secret(), controller.info["ca_fingerprint"]
    )


def _wrong_secret(controller: ControllerProc, admin: Client) -> str:
    real = jointoken.parse_token(make_token(admin))
    return jointoken.format_token(real.token_id, jointoken.new_secret(), real.ca_fingerprint)


def _expired(controller: ControllerProc, admin: Client) -> str:
    token = make_token(admin, ttl=1)
    time.sleep(1.2)
    return token


def _used_up(controller: ControllerProc, admin: Client) -> str:
    token = make_token(admin)
    enroll(controller, token, f"uses-{uuid.uuid4().hex[:8]}")
    return token


def _deleted(controller: ControllerProc, admin: Client) -> str:
    token = make_token(admin)
    nodes(admin).DeleteJoinToken(pb.DeleteJoinTokenRequest(id=jointoken.parse_token(token).token_id))
    return token


def _other_ca(controller: ControllerProc, admin: Client) -> str:
    real = jointoken.parse_token(make_token(admin))
    return jointoken.format_token(real.token_id, real.secret, "ab" * 32)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (_made_up, "JOIN_TOKEN_INVALID"),
        (_wrong_secret, "JOIN_TOKEN_INVALID"),
        (lambda c, a: "kumojoin1.garbage", "JOIN_TOKEN_INVALID"),
        (lambda c, a: "", "JOIN_TOKEN_INVALID"),
        (_expired, "JOIN_TOKEN_EXPIRED"),
        (_used_up, "JOIN_TOKEN_USED_UP"),
        (_deleted, "JOIN_TOKEN_INVALID"),
        (_other_ca, "JOIN_TOKEN_WRONG_CA"),
    ],
    ids=["made-up", "wrong-secret", "malformed", "empty", "expired", "used-up", "deleted", "other-ca"],
)
def test_refused_tokens_create_nothing(controller: ControllerProc, admin: Client, make, reason: str) -> None:  # type: ignore[no-untyped-def]
    token = make(controller, admin)
    before = count_nodes(admin)
    uses_before = None
    try:
        uses_before = token_row(admin, token).uses
    except (StopIteration, jointoken.JoinTokenFormatError):
        pass
    err = rpc_error(enroll, controller, token, f"refused-{uuid.uuid4().hex[:8]}")
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED, err.details()
    assert error_reason(err) == reason, err.details()
    assert count_nodes(admin) == before
    if uses_before is not None:
        assert token_row(admin, token).uses == uses_before


def _rsa_csr() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode()


@pytest.mark.parametrize(
    ("csr", "name", "fragment"),
    [
        ("", "ok-name", "csr_pem is required"),
        ("not a csr", "ok-name", "csr_pem"),
        ("x" * 20000, "ok-name", "at most"),
        (None, "ok-name", "EC P-256"),  # an RSA CSR
        ("valid", "", "name is required"),
        ("valid", "-bad", "not valid"),
        ("valid", "a" * 64, "at most 63"),
    ],
)
def test_enroll_rejects_bad_fields_and_keeps_the_token(
    controller: ControllerProc, admin: Client, csr: str | None, name: str, fragment: str
) -> None:
    token = make_token(admin)
    if csr == "valid":
        csr = keys.make_csr(keys.new_key(), "n").decode()
    elif csr is None:
        csr = _rsa_csr()
    stub = node_agent_pb2_grpc.NodeAgentServiceStub(controller.channel())
    err = rpc_error(stub.Enroll, apb.EnrollRequest(token=token, csr_pem=csr, name=name))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
    assert fragment in err.details()
    assert token_row(admin, token).uses == 0


def test_duplicate_name_is_refused_and_keeps_the_token(controller: ControllerProc, admin: Client) -> None:
    enroll(controller, make_token(admin), "twin")
    token = make_token(admin)
    err = rpc_error(enroll, controller, token, "twin")
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS and error_reason(err) == "NODE_EXISTS"
    assert token_row(admin, token).uses == 0


def test_single_use_token_race_has_one_winner(controller: ControllerProc, admin: Client) -> None:
    token = make_token(admin, uses=1)
    before = count_nodes(admin)
    results: list[object] = []
    barrier = threading.Barrier(8)

    def go(i: int) -> None:
        barrier.wait()
        try:
            results.append(enroll(controller, token, f"racer-{i}"))
        except grpc.RpcError as exc:
            results.append(exc)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    won = [r for r in results if not isinstance(r, grpc.RpcError)]
    lost = [r for r in results if isinstance(r, grpc.RpcError)]
    assert len(won) == 1 and len(lost) == 7
    assert all(e.code() == grpc.StatusCode.UNAUTHENTICATED for e in lost)
    assert {error_reason(e) for e in lost} == {"JOIN_TOKEN_USED_UP"}
    assert count_nodes(admin) == before + 1


def test_multi_use_token_enrolls_that_many(controller: ControllerProc, admin: Client) -> None:
    token = make_token(admin, uses=3)
    for i in range(3):
        enroll(controller, token, f"multi-{i}")
    err = rpc_error(enroll, controller, token, "multi-3")
    assert error_reason(err) == "JOIN_TOKEN_USED_UP"


def test_ca_bundle_and_pinning(controller: ControllerProc) -> None:
    stub = node_agent_pb2_grpc.NodeAgentServiceStub(controller.channel())
    bundle = stub.GetCaBundle(apb.GetCaBundleRequest())
    assert bundle.ca_pem.encode() == controller.ca_pem
    assert bundle.fingerprint == controller.info["ca_fingerprint"]
    # The public port presents the CA in its handshake, so a node can pin it.
    assert fetch_pinned_ca(controller.endpoint, bundle.fingerprint) == controller.ca_pem
    with pytest.raises(JoinError, match="refusing to join"):
        fetch_pinned_ca(controller.endpoint, "cd" * 32)


# Roles and bad input on the admin RPCs


ADMIN_RPCS = [
    ("ListNodes", pb.ListNodesRequest()),
    ("GetNode", pb.GetNodeRequest(id=NIL)),
    ("DisableNode", pb.DisableNodeRequest(id=NIL)),
    ("EnableNode", pb.EnableNodeRequest(id=NIL)),
    ("DeleteNode", pb.DeleteNodeRequest(id=NIL)),
    ("RotateNodeCertificate", pb.RotateNodeCertificateRequest(id=NIL)),
    ("CreateJoinToken", pb.CreateJoinTokenRequest()),
    ("ListJoinTokens", pb.ListJoinTokensRequest()),
    ("DeleteJoinToken", pb.DeleteJoinTokenRequest(id=NIL)),
]


@pytest.mark.parametrize("role", [idpb.ROLE_MEMBER, idpb.ROLE_READER])
def test_non_admins_are_refused(controller: ControllerProc, admin: Client, role: int) -> None:
    project = admin.identity.CreateProject(
        idpb.CreateProjectRequest(project=idpb.Project(name=f"nodes-{role}-{uuid.uuid4().hex[:6]}"))
    )
    user = make_user(admin, project.id, f"nodeuser-{role}-{uuid.uuid4().hex[:6]}", role)
    client = controller.login(user.name, "password-123")
    stub = nodes(client)
    for method, req in ADMIN_RPCS:
        err = rpc_error(getattr(stub, method), req)
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED, (method, err.code(), err.details())
        assert error_reason(err) == "ROLE_REQUIRED"


@pytest.mark.parametrize(
    "method", ["GetNode", "DisableNode", "EnableNode", "DeleteNode", "RotateNodeCertificate"]
)
def test_node_verbs_check_ids(admin: Client, method: str) -> None:
    req_cls = {m: type(r) for m, r in ADMIN_RPCS}[method]
    stub = nodes(admin)
    bad = rpc_error(getattr(stub, method), req_cls(id="not-a-uuid"))
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT
    empty = rpc_error(getattr(stub, method), req_cls())
    assert empty.code() == grpc.StatusCode.INVALID_ARGUMENT
    missing = rpc_error(getattr(stub, method), req_cls(id=NIL))
    assert missing.code() == grpc.StatusCode.NOT_FOUND and error_reason(missing) == "NODE_NOT_FOUND"


def test_list_checks_paging_and_name(admin: Client) -> None:
    stub = nodes(admin)
    for req in (
        pb.ListNodesRequest(page_size=-1),
        pb.ListNodesRequest(page_token="garbage"),
        pb.ListNodesRequest(name="bad name!"),
    ):
        assert rpc_error(stub.ListNodes, req).code() == grpc.StatusCode.INVALID_ARGUMENT
    for req in (pb.ListJoinTokensRequest(page_size=-1), pb.ListJoinTokensRequest(page_token="zz")):
        assert rpc_error(stub.ListJoinTokens, req).code() == grpc.StatusCode.INVALID_ARGUMENT
    # AIP-158: more than the maximum is served as the maximum (it was refused).
    stub.ListNodes(pb.ListNodesRequest(page_size=1001))


def test_list_pages_through_every_node(controller: ControllerProc, admin: Client) -> None:
    token = make_token(admin, uses=5)
    made = {enroll(controller, token, f"page-{i}").node_id for i in range(5)}
    seen: list[str] = []
    req = pb.ListNodesRequest(page_size=2)
    while True:
        resp = nodes(admin).ListNodes(req)
        assert len(resp.nodes) <= 2
        seen.extend(n.id for n in resp.nodes)
        if not resp.next_page_token:
            break
        req.page_token = resp.next_page_token
    assert made <= set(seen) and len(seen) == len(set(seen))
    one = nodes(admin).ListNodes(pb.ListNodesRequest(name="page-3")).nodes
    assert [n.name for n in one] == ["page-3"]


def test_disable_enable_are_state_changes(controller: ControllerProc, admin: Client) -> None:
    e = enroll(controller, make_token(admin), "verbs")
    stub = nodes(admin)
    node = stub.DisableNode(pb.DisableNodeRequest(id=e.node_id, reason="new disks"))
    assert node.state == pb.NODE_STATE_DISABLED and node.disabled_reason == "new disks"
    assert node.desired_revision == 2
    again = rpc_error(stub.DisableNode, pb.DisableNodeRequest(id=e.node_id))
    assert again.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_reason(again) == "NODE_ALREADY_DISABLED"
    node = stub.EnableNode(pb.EnableNodeRequest(id=e.node_id))
    assert node.state == pb.NODE_STATE_DOWN and node.disabled_reason == ""  # never connected
    again = rpc_error(stub.EnableNode, pb.EnableNodeRequest(id=e.node_id))
    assert again.code() == grpc.StatusCode.FAILED_PRECONDITION and error_reason(again) == "NODE_NOT_DISABLED"
    too_long = rpc_error(stub.DisableNode, pb.DisableNodeRequest(id=e.node_id, reason="r" * 256))
    assert too_long.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_concurrent_disables_have_one_winner(controller: ControllerProc, admin: Client) -> None:
    e = enroll(controller, make_token(admin), "race-disable")
    results: list[object] = []
    barrier = threading.Barrier(6)

    def go() -> None:
        barrier.wait()
        try:
            results.append(nodes(admin).DisableNode(pb.DisableNodeRequest(id=e.node_id)))
        except grpc.RpcError as exc:
            results.append(exc)

    threads = [threading.Thread(target=go) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    errors = [r for r in results if isinstance(r, grpc.RpcError)]
    assert len(errors) == 5 and all(x.code() == grpc.StatusCode.FAILED_PRECONDITION for x in errors)
    assert nodes(admin).GetNode(pb.GetNodeRequest(id=e.node_id)).desired_revision == 2


# The session


def test_session_full_state_heartbeats_changes_and_acks(controller: ControllerProc, admin: Client) -> None:
    e = enroll(controller, make_token(admin), "session-node")
    s = SessionClient(node_channel(controller, e.key_pem, e.cert_pem), hello(vcpus=6))
    welcome = s.read().welcome
    assert welcome.node_id == e.node_id
    assert welcome.heartbeat_interval.seconds == 5 and welcome.grace_period.seconds == 30  # config defaults
    full = s.read().desired_state
    assert full.full and full.revision == 1 and full.state.enabled

    s.send(
        apb.SessionRequest(
            heartbeat=apb.Heartbeat(
                seq=7,
                usage=pb.NodeUsage(memory_free_mb=4000, disk_free_gb=50, guests_running=1, guest_vcpus=2),
                guests=[
                    apb.GuestStatus(
                        instance_id="i-1", domain_name="kumo-i-1", power_state=apb.GUEST_POWER_STATE_RUNNING
                    )
                ],
            )
        )
    )
    assert s.read_kind("heartbeat_ack").heartbeat_ack.seq == 7
    node = nodes(admin).GetNode(pb.GetNodeRequest(id=e.node_id))
    assert node.state == pb.NODE_STATE_READY and node.connected
    assert node.inventory.vcpus == 6 and node.usage.memory_free_mb == 4000 and node.usage.guests_running == 1
    assert node.last_heartbeat_time.seconds >= int(time.time()) - 5
    assert node.address.startswith("ipv4:127.0.0.1:")

    # A READY node cannot be deleted.
    busy = rpc_error(nodes(admin).DeleteNode, pb.DeleteNodeRequest(id=e.node_id))
    assert busy.code() == grpc.StatusCode.FAILED_PRECONDITION and error_reason(busy) == "NODE_IN_SERVICE"

    # A change comes down as a delta on the revision the node has.
    nodes(admin).DisableNode(pb.DisableNodeRequest(id=e.node_id))
    delta = s.read_kind("desired_state").desired_state
    assert not delta.full and delta.base_revision == 1 and delta.revision == 2 and not delta.state.enabled
    s.send(apb.SessionRequest(ack=apb.DesiredStateAck(revision=2)))
    wait_for(
        lambda: nodes(admin).GetNode(pb.GetNodeRequest(id=e.node_id)).applied_revision == 2,
        10,
        what="applied revision 2",
    )

    # Deleting the (disabled) node ends its session and refuses its certificate.
    nodes(admin).DeleteNode(pb.DeleteNodeRequest(id=e.node_id))
    with pytest.raises(grpc.RpcError) as info:
        s.read_kind("never")
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED and error_reason(info.value) == "NODE_DELETED"
    again = SessionClient(node_channel(controller, e.key_pem, e.cert_pem), hello())
    with pytest.raises(grpc.RpcError) as info:
        again.read()
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED and error_reason(info.value) == "NODE_UNKNOWN"
    gone = rpc_error(nodes(admin).GetNode, pb.GetNodeRequest(id=e.node_id))
    assert gone.code() == grpc.StatusCode.NOT_FOUND


def test_reconnect_gets_full_state_again(controller: ControllerProc, admin: Client) -> None:
    e = enroll(controller, make_token(admin), "reconnecter")
    first = SessionClient(node_channel(controller, e.key_pem, e.cert_pem), hello())
    first.read_kind("desired_state")
    second = SessionClient(node_channel(controller, e.key_pem, e.cert_pem), hello(applied=1))
    second.read_kind("welcome")
    full = second.read_kind("desired_state").desired_state
    assert full.full and full.revision == 1
    # The older session is replaced, not left hanging.
    with pytest.raises(grpc.RpcError) as info:
        first.read_kind("never")
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE and error_reason(info.value) == "SESSION_REPLACED"
    second.close()
    assert count_nodes(admin) >= 1
    assert len(nodes(admin).ListNodes(pb.ListNodesRequest(name="reconnecter")).nodes) == 1


@pytest.mark.parametrize(
    ("first", "then", "fragment"),
    [
        (apb.SessionRequest(heartbeat=apb.Heartbeat(seq=1)), None, "hello"),
        (apb.SessionRequest(), None, "hello"),
        (hello(vcpus=-1), None, "vcpus"),
        (
            apb.SessionRequest(hello=apb.NodeHello(inventory=pb.NodeInventory(virt_type="xen"))),
            None,
            "virt_type",
        ),
        (hello(), hello(), "one hello"),
        (
            hello(),
            apb.SessionRequest(heartbeat=apb.Heartbeat(usage=pb.NodeUsage(memory_free_mb=-1))),
            "negative",
        ),
        (
            hello(),
            apb.SessionRequest(heartbeat=apb.Heartbeat(inventory=pb.NodeInventory(hostname="h" * 300))),
            "hostname",
        ),
        (hello(), apb.SessionRequest(renew_certificate=apb.RenewCertificateRequest()), "csr_pem is required"),
        (
            hello(),
            apb.SessionRequest(renew_certificate=apb.RenewCertificateRequest(csr_pem="not a csr")),
            "renew_certificate.csr_pem is not a PEM",
        ),
    ],
    ids=[
        "heartbeat-first",
        "empty-first",
        "negative-vcpus",
        "bad-virt-type",
        "two-hellos",
        "bad-usage",
        "long-name",
        "renew-without-csr",
        "renew-bad-csr",
    ],
)
def test_session_rejects_bad_messages(
    controller: ControllerProc,
    admin: Client,
    first: apb.SessionRequest,
    then: apb.SessionRequest | None,
    fragment: str,
) -> None:
    e = enroll(controller, make_token(admin), f"bad-msg-{uuid.uuid4().hex[:8]}")
    s = SessionClient(node_channel(controller, e.key_pem, e.cert_pem), first)
    if then is not None:
        s.read_kind("desired_state")
        s.send(then)
    with pytest.raises(grpc.RpcError) as info:
        s.read_kind("never")
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
    assert fragment in info.value.details()


def _foreign_cert(node_id: str) -> tuple[bytes, bytes]:
    """A client certificate naming a real node, signed by some other CA."""
    other = pki._new_ca()
    key = keys.new_key()
    cert = other.sign_node_csr(keys.make_csr(key, "x"), node_id, x509.random_serial_number())
    return keys.key_pem(key), cert


def test_sessions_need_our_client_certificate(controller: ControllerProc, admin: Client) -> None:
    e = enroll(controller, make_token(admin), "cert-check")
    cases = {
        "no client certificate": (None, None),
        "another CA's certificate": _foreign_cert(e.node_id),
    }
    for what, (key, cert) in cases.items():
        s = SessionClient(node_channel(controller, key, cert), hello())
        with pytest.raises(grpc.RpcError) as info:
            s.read()
        assert info.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAUTHENTICATED), what
    # A certificate from our CA that is not the one the node enrolled with (a
    # re-issued one, say) is refused too.
    ca = pki.CertificateAuthority(
        x509.load_pem_x509_certificate(controller.ca_pem),
        serialization.load_pem_private_key((Path(controller.data_dir) / "pki" / "ca.key").read_bytes(), None),  # type: ignore[arg-type]
    )
    key = keys.new_key()
    stale = ca.sign_node_csr(keys.make_csr(key, "x"), e.node_id, x509.random_serial_number())
    s = SessionClient(node_channel(controller, keys.key_pem(key), stale), hello())
    with pytest.raises(grpc.RpcError) as info:
        s.read()
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED and error_reason(info.value) == "CERT_REVOKED"
    # ... and one for a node id that does not exist.
    ghost = ca.sign_node_csr(keys.make_csr(key, "x"), str(uuid.uuid4()), x509.random_serial_number())
    s = SessionClient(node_channel(controller, keys.key_pem(key), ghost), hello())
    with pytest.raises(grpc.RpcError) as info:
        s.read()
    assert error_reason(info.value) == "NODE_UNKNOWN"


def test_each_port_serves_its_own_rpcs(controller: ControllerProc, admin: Client) -> None:
    e = enroll(controller, make_token(admin), "ports")
    # Session on the public port: no node identity there.
    public = SessionClient(controller.channel(), hello())
    with pytest.raises(grpc.RpcError) as info:
        public.read()
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    # Enrollment and admin RPCs on the node port, even with a valid node certificate.
    channel = node_channel(controller, e.key_pem, e.cert_pem)
    agent = node_agent_pb2_grpc.NodeAgentServiceStub(channel)
    for call, req in ((agent.Enroll, apb.EnrollRequest()), (agent.GetCaBundle, apb.GetCaBundleRequest())):
        err = rpc_error(call, req, timeout=10)
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED and error_reason(err) == "WRONG_PORT"
    admin_on_node_port = rpc_error(
        node_pb2_grpc.NodeServiceStub(channel).ListNodes, pb.ListNodesRequest(), timeout=10
    )
    assert admin_on_node_port.code() == grpc.StatusCode.UNIMPLEMENTED
