"""Tokens: missing, malformed, expired, tampered and revoked tokens are refused
with UNAUTHENTICATED on every RPC; health and reflection stay open."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from controller.auth.policy import POLICY, Rule
from controller.auth.tokens import TokenClaims, TokenKeyring, TokenSigner
from kumo.v1 import identity_pb2 as pb
from tests.harness import ControllerProc, error_reason, rpc_error
from tests.rpcs import all_rpcs

GUARDED = [r for r in all_rpcs() if POLICY.get(r.path) is not Rule.OPEN]


def _signer(controller: ControllerProc) -> TokenSigner:
    """Signs as the controller does (with its newest key)."""
    return TokenKeyring(Path(controller.data_dir) / "token-keys")


@pytest.fixture(scope="module")
def bad_tokens(controller: ControllerProc) -> dict[str, str]:
    """One token of each broken kind, all for the real admin user."""
    good = controller.login()
    signer = _signer(controller)
    who = good.who
    assert who is not None
    expired = signer.issue(TokenClaims(who.token_id, who.user_id, who.project_id, time.time() - 5))
    header, payload, sig = good.token.split(".")
    tampered_payload = payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB")
    revoked_client = controller.login()
    revoked_client.identity.RevokeToken(pb.RevokeTokenRequest())
    forged = TokenSigner(b"x" * 32).issue(
        TokenClaims(who.token_id, who.user_id, who.project_id, time.time() + 600)
    )
    return {
        "missing": "",
        "garbage": "not-a-token",
        "expired": expired,
        "tampered": f"{header}.{tampered_payload}.{sig}",
        "wrong-key": forged,
        "revoked": revoked_client.token,
    }


@pytest.mark.parametrize("kind", ["missing", "garbage", "expired", "tampered", "wrong-key", "revoked"])
def test_every_guarded_rpc_refuses_bad_tokens(
    controller: ControllerProc, bad_tokens: dict[str, str], kind: str
) -> None:
    token = bad_tokens[kind]
    metadata = [("authorization", f"Bearer {token}")] if token else []
    channel = controller.channel()
    assert GUARDED, "no RPCs found"
    for rpc in GUARDED:
        err = rpc_error(rpc.call, channel, metadata)
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED, (
            f"{rpc.path} with {kind} token: {err.code()} {err.details()}"
        )
        assert err.details()


def test_reasons_say_what_is_wrong(controller: ControllerProc, bad_tokens: dict[str, str]) -> None:
    stub_call = next(r for r in GUARDED if r.path.endswith("/GetCurrentIdentity"))
    channel = controller.channel()
    expect = {
        "missing": "TOKEN_MISSING",
        "expired": "TOKEN_EXPIRED",
        "tampered": "TOKEN_INVALID",
        "revoked": "TOKEN_REVOKED",
    }
    for kind, reason in expect.items():
        token = bad_tokens[kind]
        err = rpc_error(stub_call.call, channel, [("authorization", f"Bearer {token}")] if token else [])
        assert error_reason(err) == reason, (kind, err.details())


def test_wrong_scheme_is_refused(controller: ControllerProc) -> None:
    good = controller.login()
    rpc = next(r for r in GUARDED if r.path.endswith("/GetCurrentIdentity"))
    err = rpc_error(rpc.call, controller.channel(), [("authorization", f"Basic {good.token}")])
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED


def test_wrong_password_and_unknown_user_look_the_same(controller: ControllerProc) -> None:
    a = rpc_error(controller.login, "admin", "wrong-password")
    b = rpc_error(controller.login, "nobody-here", "wrong-password")
    assert a.code() == b.code() == grpc.StatusCode.UNAUTHENTICATED
    assert a.details() == b.details()


def test_logout_revokes_only_that_token(controller: ControllerProc) -> None:
    one, two = controller.login(), controller.login()
    one.identity.RevokeToken(pb.RevokeTokenRequest())
    assert (
        rpc_error(one.identity.GetCurrentIdentity, pb.GetCurrentIdentityRequest()).code()
        == grpc.StatusCode.UNAUTHENTICATED
    )
    assert two.identity.GetCurrentIdentity(pb.GetCurrentIdentityRequest()).user_name == "admin"


def test_admin_can_revoke_another_token(controller: ControllerProc, admin) -> None:  # type: ignore[no-untyped-def]
    other = controller.login()
    admin.identity.RevokeToken(pb.RevokeTokenRequest(token_id=other.who.token_id))
    assert (
        rpc_error(other.identity.GetCurrentIdentity, pb.GetCurrentIdentityRequest()).code()
        == grpc.StatusCode.UNAUTHENTICATED
    )
    missing = rpc_error(
        admin.identity.RevokeToken, pb.RevokeTokenRequest(token_id="00000000-0000-0000-0000-000000000000")
    )
    assert missing.code() == grpc.StatusCode.NOT_FOUND


def test_health_and_reflection_need_no_token(controller: ControllerProc) -> None:
    channel = controller.channel()
    resp = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
    assert resp.status == health_pb2.HealthCheckResponse.SERVING
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    answers = list(
        stub.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10
        )
    )
    names = {s.name for s in answers[0].list_services_response.service}
    assert "kumo.v1.IdentityService" in names


def test_plaintext_is_refused(controller: ControllerProc) -> None:
    channel = grpc.insecure_channel(controller.endpoint)
    with pytest.raises(grpc.RpcError) as info:
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE


def test_token_expiry_follows_config(tmp_path: Path) -> None:
    proc = ControllerProc(tmp_path / "data", extra_env={"KUMO_TOKEN_TTL_SECONDS": "120"})
    (tmp_path / "data").mkdir()
    proc.start()
    try:
        client = proc.login()
        ttl = client.who.expire_time.seconds - time.time()
        assert 100 < ttl <= 121
    finally:
        proc.stop()
