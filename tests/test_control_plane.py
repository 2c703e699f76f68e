"""Several controllers on one PostgreSQL database sharing one directory (CA,
token keyring, image blobs): any of them accepts the others' tokens and
serves the others' images; `ListControllers` shows them; a controller with
its own CA or keys is refused. Plus the token keyring's rotation rules."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from bench.procs import ROOT, make_image
from controller.auth import tokens
from controller.auth.tokens import TokenClaims, TokenKeyring, TokenSigner
from controller.config import ControllerConfig
from controller.errors import Unauthenticated
from kumo.v1 import control_plane_pb2 as cpb
from kumo.v1 import control_plane_pb2_grpc
from kumo.v1 import identity_pb2 as idpb
from kumo.v1 import image_pb2 as ipb
from tests.harness import Client, ControllerProc, make_user, start_control_plane
from tests.waits import wait_until

pytestmark = pytest.mark.postgres

BEAT = 0.5
# How long a controller may reuse a token's database check (the default).
TOKEN_CHECK_BOUND = ControllerConfig().token_check_cache_seconds


def control_plane(client: Client) -> control_plane_pb2_grpc.ControlPlaneServiceStub:
    return client.stub(control_plane_pb2_grpc.ControlPlaneServiceStub)


def kid_of(token: str) -> str:
    payload = token.split(".")[1]
    return str(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))).get("kid", "0"))


@pytest.fixture(scope="module")
def plane(
    postgres, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path, list[ControllerProc]]]:  # type: ignore[no-untyped-def]
    url = postgres.create_database("kumo_control_plane")
    base = tmp_path_factory.mktemp("plane")
    for procs in start_control_plane(url, base, extra_env={"KUMO_CONTROLLER_HEARTBEAT_SECONDS": str(BEAT)}):
        yield url, base / "shared", procs


def test_controllers_share_tokens_images_and_see_each_other(plane) -> None:  # type: ignore[no-untyped-def]
    _, _, (a, b) = plane
    on_a = a.login()
    # A token from A works on B, and revoking it on A ends it on B too.
    on_b = Client(b.channel(), on_a.token, endpoint=b.endpoint)
    assert on_b.identity.GetCurrentIdentity(idpb.GetCurrentIdentityRequest()).user_name == "admin"
    data = b"kumo image bytes " * 4096
    image = make_image(on_a, "shared-image", data)
    got = b"".join(
        m.data for m in on_b.images.DownloadImageData(ipb.DownloadImageDataRequest(image_id=image.id))
    )
    assert got == data
    listed = wait_until(
        lambda: (
            (r := control_plane(on_b).ListControllers(cpb.ListControllersRequest())).controllers
            and len(r.controllers) == 2
            and all(c.state == cpb.CONTROLLER_STATE_UP for c in r.controllers)
            and r
        ),
        what="both controllers UP",
        base=20,
    )
    assert {c.endpoint for c in listed.controllers} == {a.endpoint, b.endpoint}
    assert all(c.version and c.hostname and c.node_endpoint for c in listed.controllers)
    on_a.identity.RevokeToken(idpb.RevokeTokenRequest())
    revoked_at = time.monotonic()
    # On A, where it was revoked, at once; on B (which checked it a moment ago
    # and may reuse that check) within the documented bound, never later.
    for where in (on_a, on_b):
        if where is on_b:
            wait_until(lambda: time.monotonic() - revoked_at > TOKEN_CHECK_BOUND, what="the bound", base=5)
        with pytest.raises(grpc.RpcError) as exc:
            where.identity.GetCurrentIdentity(idpb.GetCurrentIdentityRequest())
        assert exc.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_a_rotated_key_signs_everywhere_and_old_tokens_still_verify(plane) -> None:  # type: ignore[no-untyped-def]
    _, shared, (a, b) = plane
    before = a.login()
    resp = control_plane(before).RotateTokenKey(cpb.RotateTokenKeyRequest())
    assert (shared / "token-keys" / f"{resp.key_id}.key").exists()
    after = a.login()
    assert kid_of(after.token) == resp.key_id != kid_of(before.token)
    for token in (before.token, after.token):  # B learns the new key from the token itself
        c = Client(b.channel(), token, endpoint=b.endpoint)
        assert c.identity.GetCurrentIdentity(idpb.GetCurrentIdentityRequest()).user_name == "admin"
    # B signs with the new key within the rescan bound.
    wait_until(
        lambda: kid_of(b.login().token) == resp.key_id,
        what="B signing with the new key",
        base=tokens.RESCAN_SECONDS * 2,
    )


def test_list_controllers_is_for_admins_and_checks_its_page_token(plane) -> None:  # type: ignore[no-untyped-def]
    _, _, (a, _) = plane
    admin = a.login()
    project = admin.identity.CreateProject(idpb.CreateProjectRequest(project=idpb.Project(name="cp-proj")))
    make_user(admin, project.id, "cp-member", idpb.ROLE_MEMBER)
    member = a.login("cp-member", "password-123")
    for call in (
        lambda: control_plane(member).ListControllers(cpb.ListControllersRequest()),
        lambda: control_plane(member).RotateTokenKey(cpb.RotateTokenKeyRequest()),
    ):
        with pytest.raises(grpc.RpcError) as exc:
            call()
        assert exc.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.RpcError) as exc:
        control_plane(admin).ListControllers(cpb.ListControllersRequest(page_token="bm90LWEtdG9rZW4"))
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    first = control_plane(admin).ListControllers(cpb.ListControllersRequest(page_size=1))
    rest = control_plane(admin).ListControllers(
        cpb.ListControllersRequest(page_size=1, page_token=first.next_page_token)
    )
    assert len(first.controllers) == len(rest.controllers) == 1
    assert first.controllers[0].id != rest.controllers[0].id


def refused(url: str, data: Path, shared: Path) -> str:
    """Starts a controller that must refuse to run; returns what it said."""
    data.mkdir()
    env = {**ControllerProc(data).env(), "KUMO_SHARED_DIR": str(shared)}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "controller.main",
            "--data-dir",
            str(data),
            "--listen",
            "127.0.0.1:0",
            "--node-listen",
            "127.0.0.1:0",
            "--database-url",
            url,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done
    return done.stderr


def test_a_controller_with_another_ca_or_other_keys_is_refused(plane, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url, shared, _ = plane
    said = refused(url, tmp_path / "own-ca", tmp_path / "elsewhere")
    assert "CA has fingerprint" in said and "shared directory" in said, said
    # The right CA but a keyring of its own.
    same_ca = tmp_path / "same-ca"
    shutil.copytree(shared / "pki", same_ca / "pki")
    said = refused(url, tmp_path / "own-keys", same_ca)
    assert "token keys" in said, said


def test_a_killed_controller_shows_lost(plane) -> None:  # type: ignore[no-untyped-def]
    """Last: it kills B."""
    _, _, (a, b) = plane
    admin = a.login()
    b.stop(sig=9)

    def b_lost() -> bool:
        rows = control_plane(admin).ListControllers(cpb.ListControllersRequest()).controllers
        return any(c.endpoint == b.endpoint and c.state == cpb.CONTROLLER_STATE_LOST for c in rows)

    wait_until(b_lost, what="B LOST", base=BEAT * 10)


# The keyring on its own


def test_rotation_keeps_every_key_an_unexpired_token_can_use(tmp_path: Path) -> None:
    d = tmp_path / "keys"
    ring = TokenKeyring(d)
    (first,) = tokens.read_keys(d)
    ttl = 3600.0
    t0 = tokens._kid_time(first)
    second, removed = tokens.rotate(d, ttl, t0 + 10)
    assert removed == [] and set(tokens.read_keys(d)) == {first, second}
    # The first key signed until the second came: its tokens live one ttl longer.
    third, removed = tokens.rotate(d, ttl, t0 + 10 + ttl - 1)
    assert removed == [] and len(tokens.read_keys(d)) == 3
    _, removed = tokens.rotate(d, ttl, t0 + 10 + ttl + 1)
    assert removed == [first] and second in tokens.read_keys(d) and third in tokens.read_keys(d)
    del ring


def test_the_old_single_key_is_imported_so_its_tokens_keep_working(tmp_path: Path) -> None:
    legacy = tmp_path / "token.key"
    legacy.write_bytes(b"k" * 32)
    old_token = TokenSigner(b"k" * 32).issue(TokenClaims("t", "u", "p", time.time() + 60))
    ring = TokenKeyring(tmp_path / "token-keys", legacy_file=legacy)
    assert ring.verify(old_token, time.time()).token_id == "t"
    forged = TokenSigner(b"x" * 32).issue(TokenClaims("t", "u", "p", time.time() + 60))
    with pytest.raises(Unauthenticated):
        ring.verify(forged, time.time())


def test_a_key_made_elsewhere_verifies_at_once_and_odd_kids_are_not_looked_up(tmp_path: Path) -> None:
    d = tmp_path / "keys"
    here, there = TokenKeyring(d), TokenKeyring(d)
    kid, _ = there.rotate(3600, time.time())
    token = there.issue(TokenClaims("t", "u", "p", time.time() + 60))
    assert kid_of(token) == kid
    assert here.verify(token, time.time()).token_id == "t"  # no wait for a rescan
    for odd in ("../../etc/passwd", "x" * 300, ""):
        assert here._key_for(odd) is None
