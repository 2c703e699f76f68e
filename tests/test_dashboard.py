"""kumo-dashboard's security rules and pages over real HTTPS, without a
browser: a real controller (no nodes), a real dashboard process, and an
HTTP client that logs in through the login form. The browser tests are
tests/test_dashboard_browser.py."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from kumo.v1 import compute_pb2 as cpb
from kumo.v1 import identity_pb2 as idpb
from kumo.v1 import image_pb2 as ipb
from tests.dashboardutil import (
    DashboardProc,
    controller_and_dashboard,
    csrf_of,
    dashboard_cert,
    https,
    login,
    one_line_error,
)
from tests.harness import ControllerProc, rpc_error, two_tenants
from tests.nodeutil import wait_for

PAGES = [
    "/",
    "/servers",
    "/servers/new",
    "/images",
    "/volumes",
    "/networks",
    "/security-groups",
    "/keypairs",
    "/server-groups",
    "/settings",
]
ADMIN_PAGES = [
    "/admin/nodes",
    "/admin/projects",
    "/admin/flavors",
    "/admin/volume-types",
    "/admin/quotas",
    "/admin/events",
]


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory, dashboard_key: bytes) -> Iterator[dict]:
    with controller_and_dashboard(tmp_path_factory.mktemp("dash"), dashboard_key) as (ctl, dash):
        admin = ctl.login()
        yield {"ctl": ctl, "dash": dash, "admin": admin, **two_tenants(ctl, admin, "dash")}


def test_login_sets_a_strict_session_cookie_and_a_strict_csp(cloud: dict) -> None:
    client = https(cloud["ctl"], cloud["dash"].url)
    page = client.get("/login")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    resp = client.post(
        "/login", data={"csrf_token": csrf_of(page.text), "user": "dash-alice", "password": "password-123"}
    )
    assert resp.status_code == 303
    cookie = next(c for c in resp.headers.get_list("set-cookie") if c.startswith("kumo_session="))
    flags = [f.strip().lower() for f in cookie.split(";")]
    assert {"httponly", "secure", "samesite=strict", "path=/"} <= set(flags), cookie
    sid = cookie.split(";")[0].split("=", 1)[1]
    assert len(sid) >= 40 and "." not in sid, "the cookie is a random id, not the token"
    assert sid not in str(cloud["alice"].token)


def test_login_refuses_a_bad_password_and_a_missing_csrf_token(cloud: dict) -> None:
    client = https(cloud["ctl"], cloud["dash"].url)
    page = client.get("/login")
    bad = client.post(
        "/login", data={"csrf_token": csrf_of(page.text), "user": "dash-alice", "password": "nope"}
    )
    assert bad.status_code == 401 and "[UNAUTHENTICATED]" in bad.text and "Traceback" not in bad.text
    forged = https(cloud["ctl"], cloud["dash"].url).post(
        "/login", data={"user": "dash-alice", "password": "password-123"}
    )
    assert forged.status_code == 403 and "kumo_session" not in forged.headers.get("set-cookie", "")


def test_pages_render_with_no_inline_script_or_style(cloud: dict) -> None:
    client, _ = login(cloud["dash"], cloud["ctl"])
    for path in PAGES + ADMIN_PAGES:
        resp = client.get(path)
        assert resp.status_code == 200, (path, one_line_error(resp.text))
        assert resp.headers["cache-control"] == "no-store"
        html = resp.text
        for tag in re.findall(r"<script[^>]*>", html):
            assert "src=" in tag, (path, tag)
        assert not re.search(r"<script[^>]*>[^<]+</script>", html), path
        assert not re.search(r"\son[a-z]+=", html), f"inline event handler on {path}"
        assert not re.search(r"\sstyle=", html), f"inline style on {path}"
        assert "<style" not in html, path


def test_a_post_without_or_with_a_wrong_csrf_token_is_refused(cloud: dict) -> None:
    client, token = login(cloud["dash"], cloud["ctl"], "dash-alice", "password-123")
    missing = client.post("/keypairs", data={"name": "no-csrf"})
    wrong = client.post("/keypairs", data={"name": "wrong-csrf", "csrf_token": token[::-1]})
    header = client.post("/keypairs", data={"name": "wrong-hdr"}, headers={"X-CSRF-Token": "x" * 43})
    for resp in (missing, wrong, header):
        assert resp.status_code == 403 and "CSRF" in one_line_error(resp.text)
    names = {k.name for k in cloud["alice"].compute.ListKeypairs(cpb.ListKeypairsRequest()).keypairs}
    assert not names & {"no-csrf", "wrong-csrf", "wrong-hdr"}
    ok = client.post("/keypairs", data={"name": "with-csrf", "csrf_token": token})
    assert (
        ok.status_code == 200 and ok.headers["content-disposition"] == 'attachment; filename="with-csrf.pem"'
    )
    assert ok.text.startswith("-----BEGIN") and "PRIVATE KEY" in ok.text
    again = client.get("/keypairs")
    assert "with-csrf" in again.text and "PRIVATE KEY" not in again.text, "the private key is shown once"


def test_a_reader_sees_no_write_forms_and_a_forged_post_is_refused(cloud: dict) -> None:
    client, token = login(cloud["dash"], cloud["ctl"], "dash-reader", "password-123")
    for path in PAGES:
        html = client.get(path).text
        posts = re.findall(r'<form method="post" action="([^"]+)"', html)
        # Their own password is a reader's to change; nothing else is.
        assert set(posts) <= {"/logout", "/settings/password"}, (path, posts)
        assert 'id="upload-form"' not in html and 'id="launch"' not in html
    forged = client.post("/keypairs", data={"name": "by-reader", "csrf_token": token})
    assert forged.status_code == 403
    line = one_line_error(forged.text)
    assert line.endswith("[PERMISSION_DENIED]") and "\n" not in line and "Traceback" not in forged.text
    err = rpc_error(
        cloud["reader"].compute.CreateKeypair, cpb.CreateKeypairRequest(keypair=cpb.Keypair(name="x"))
    )
    assert line.startswith(err.details().replace("'", "&#39;")), (line, err.details())
    # The admin panel is the API's to refuse, in the same one line.
    assert client.get("/admin/nodes").status_code == 403


def test_forms_are_validated_on_the_server(cloud: dict) -> None:
    client, token = login(cloud["dash"], cloud["ctl"], "dash-alice", "password-123")
    resp = client.post("/servers", data={"csrf_token": token, "name": "", "image": "x", "flavor": "y"})
    assert resp.status_code == 400 and one_line_error(resp.text) == "name: required [INVALID_ARGUMENT]"
    resp = client.post("/volumes", data={"csrf_token": token, "name": "v", "size_gb": "lots"})
    assert one_line_error(resp.text) == "size_gb: a whole number is needed [INVALID_ARGUMENT]"
    resp = client.post("/servers", data={"csrf_token": token, "name": "s", "image": "nope", "flavor": "nope"})
    assert resp.status_code in (400, 404) and one_line_error(resp.text).endswith("]")


def test_a_missing_server_is_a_one_line_not_found(cloud: dict) -> None:
    client, _ = login(cloud["dash"], cloud["ctl"], "dash-alice", "password-123")
    resp = client.get("/servers/00000000-0000-4000-8000-000000000000")
    assert resp.status_code == 404 and one_line_error(resp.text).endswith("not found [NOT_FOUND]")
    # A live update (htmx) that fails puts the one line in the page's error box instead.
    polled = client.get("/servers/00000000-0000-4000-8000-000000000000/badge", headers={"HX-Request": "true"})
    assert polled.status_code == 404 and polled.headers["hx-retarget"] == "#errors"
    assert one_line_error(polled.text) == one_line_error(resp.text) and "<html" not in polled.text
    # Without a session, htmx is told to take the whole page to the login form.
    anon = https(cloud["ctl"], cloud["dash"].url).get("/servers/rows", headers={"HX-Request": "true"})
    assert anon.status_code == 401 and anon.headers["hx-redirect"] == "/login"


def test_image_upload_is_streamed_to_the_api(cloud: dict) -> None:
    client, token = login(cloud["dash"], cloud["ctl"], "dash-alice", "password-123")
    created = client.post("/images", data={"csrf_token": token, "name": "streamed", "disk_format": "raw"})
    assert created.status_code == 200, created.text
    image_id = created.json()["id"]
    piece = bytes(range(256)) * 4096  # 1 MiB
    total = 9

    def body() -> Iterator[bytes]:
        for _ in range(total):
            yield piece

    no_csrf = client.put(f"/images/{image_id}/data", content=piece)
    assert no_csrf.status_code == 403
    resp = client.put(
        f"/images/{image_id}/data",
        content=body(),
        headers={"X-CSRF-Token": token, "Content-Length": str(total * len(piece))},
    )
    assert resp.status_code == 200, resp.text
    image = cloud["alice"].images.GetImage(ipb.GetImageRequest(id=image_id))
    assert image.status == ipb.IMAGE_STATUS_ACTIVE and image.size_bytes == total * len(piece)
    assert image.checksum_sha256 == hashlib.sha256(piece * total).hexdigest()


def test_the_console_websocket_refuses_another_origin(cloud: dict) -> None:
    import ssl

    from websockets.sync.client import connect

    client, token = login(cloud["dash"], cloud["ctl"], "dash-alice", "password-123")
    sid = client.cookies["kumo_session"]
    ctx = ssl.create_default_context(cafile=cloud["ctl"].ca_file)
    url = cloud["dash"].url.replace("https", "wss") + "/servers/x/console/ws?csrf=" + token
    with (
        pytest.raises(Exception) as refused,
        connect(
            url,
            ssl=ctx,
            additional_headers={"Cookie": f"kumo_session={sid}", "Origin": "https://evil.example"},
        ) as ws,
    ):
        ws.recv(timeout=10)
    assert "1008" in str(refused.value) or "403" in str(refused.value)


def test_logout_revokes_the_token(cloud: dict) -> None:
    client, token = login(cloud["dash"], cloud["ctl"], "dash-bob", "password-123")
    sid = client.cookies["kumo_session"]
    resp = client.post("/logout", data={"csrf_token": token})
    assert resp.status_code == 303 and resp.headers["location"] == "/login"
    stale = https(cloud["ctl"], cloud["dash"].url, cookies={"kumo_session": sid})
    assert stale.get("/servers").headers["location"] == "/login"
    # The token is dead at the API too: its id is in the controller's revocations.
    events = (
        cloud["admin"]
        .events.ListEvents(
            __import__("kumo.v1.event_pb2", fromlist=["x"]).ListEventsRequest(action="revoke", page_size=50)
        )
        .events
    )
    assert any(e.user_name == "dash-bob" for e in events), [e.user_name for e in events]


def test_an_expired_token_sends_the_user_back_to_login(tmp_path: Path, dashboard_key: bytes) -> None:
    (tmp_path / "ctl").mkdir()
    ctl = ControllerProc(tmp_path / "ctl", extra_env={"KUMO_TOKEN_TTL_SECONDS": "3"}).start()
    cert, key = dashboard_cert(ctl, dashboard_key, tmp_path / "tls")
    dash = DashboardProc(ctl, tmp_path, cert, key).start()
    try:
        client, _ = login(dash, ctl)
        resp = wait_for(
            lambda: (r := client.get("/servers")).status_code == 303 and r,
            timeout=30,
            step=0.5,
            what="the token to expire",
        )
        assert resp.headers["location"] == "/login?expired=1"
        page = client.get("/login?expired=1")
        assert "expired" in page.text and "log in again" in page.text
        assert client.get("/servers").headers["location"] == "/login", "the session is gone"
    finally:
        dash.stop()
        ctl.stop()


def test_changing_a_password_needs_the_current_one(cloud: dict) -> None:
    """Changing a password goes to the API as the user themself, with their current password."""
    client, token = login(cloud["dash"], cloud["ctl"], "dash-bob", "password-123")
    wrong = client.post(
        "/settings/password",
        data={
            "csrf_token": token,
            "current_password": "bad",
            "new_password": "password-456",
            "confirm": "password-456",
        },
    )
    assert wrong.status_code in (400, 401, 403) and one_line_error(wrong.text).endswith("]")
    mismatch = client.post(
        "/settings/password",
        data={
            "csrf_token": token,
            "current_password": "password-123",
            "new_password": "a" * 12,
            "confirm": "b",
        },
    )
    assert one_line_error(mismatch.text) == "confirm: does not match the new password [INVALID_ARGUMENT]"
    with pytest.raises(grpc.RpcError):
        cloud["ctl"].login("dash-bob", "password-456")


def test_the_dashboard_is_a_client_of_the_api_only() -> None:
    """It never imports the controller or the database layer (like the CLI)."""
    import ast

    from tests.harness import ROOT

    found = []
    for path in sorted((ROOT / "dashboard").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            found += [
                f"{path.name}: {n}"
                for n in names
                if n.split(".")[0] in ("controller", "peewee", "noded", "cli")
            ]
    assert not found, found


def test_admin_panel_forms_do_what_they_say(cloud: dict) -> None:
    from kumo.v1 import node_pb2 as npb

    admin = cloud["admin"]
    client, token = login(cloud["dash"], cloud["ctl"])
    made = client.post(
        "/admin/nodes/join-token", data={"csrf_token": token, "description": "rack 2", "max_uses": "2"}
    )
    assert made.status_code == 200
    shown = re.search(r'id="join-token-value">([^<]+)<', made.text)
    assert shown and shown.group(1).startswith("kumojoin1.")
    assert shown.group(1) not in client.get("/admin/nodes").text, "a join token is shown once"
    tokens = admin.nodes.ListJoinTokens(npb.ListJoinTokensRequest()).join_tokens
    assert any(t.description == "rack 2" and t.max_uses == 2 for t in tokens)
    flavor = client.post(
        "/admin/flavors",
        data={"csrf_token": token, "name": "web.large", "vcpus": "4", "ram_mb": "8192", "disk_gb": "40"},
    )
    assert flavor.status_code == 303
    assert any(f.name == "web.large" for f in admin.compute.ListFlavors(cpb.ListFlavorsRequest()).flavors)
    project = client.post("/admin/projects", data={"csrf_token": token, "name": "dash-c"})
    assert project.status_code == 303
    pid = next(
        p.id for p in admin.identity.ListProjects(idpb.ListProjectsRequest()).projects if p.name == "dash-c"
    )
    client.post(
        "/admin/users",
        data={"csrf_token": token, "name": "dash-carol", "password": "password-789", "project": pid},
    )
    uid = next(
        u.id for u in admin.identity.ListUsers(idpb.ListUsersRequest()).users if u.name == "dash-carol"
    )
    client.post("/admin/roles", data={"csrf_token": token, "user": uid, "project": pid, "role": "member"})
    assert cloud["ctl"].login("dash-carol", "password-789").who.role == idpb.ROLE_MEMBER
    quota = client.post(
        "/admin/quotas", data={"csrf_token": token, "project": pid, "instances": "7", "vcpus": ""}
    )
    assert quota.status_code == 303
    limits = admin.identity.GetQuota(idpb.GetQuotaRequest(project_id=pid)).limits
    assert limits.instances == 7
    page = client.get(f"/admin/quotas?project={pid}")
    assert 'data-label="servers" data-fraction="0.000"' in page.text
    events = client.get("/admin/events").text
    assert "<td>create</td>" in events and "<td>ok</td>" in events


def test_networks_and_security_group_forms(cloud: dict) -> None:
    client, token = login(cloud["dash"], cloud["ctl"], "dash-alice", "password-123")
    net = client.post("/networks", data={"csrf_token": token, "name": "front", "cidr": "10.77.0.0/24"})
    assert net.status_code == 303, one_line_error(net.text)
    page = client.get("/networks").text
    assert 'data-name="front"' in page and "10.77.0.0/24" in page and "<svg" in page
    bad = client.post("/networks", data={"csrf_token": token, "name": "back", "cidr": "not-a-cidr"})
    assert bad.status_code == 400 and "[INVALID_ARGUMENT]" in one_line_error(bad.text)
    group = client.post("/security-groups", data={"csrf_token": token, "name": "web"})
    assert group.status_code == 303
    from kumo.v1 import network_pb2 as npb

    alice = cloud["alice"]
    sg = next(
        g
        for g in alice.networks.ListSecurityGroups(npb.ListSecurityGroupsRequest()).security_groups
        if g.name == "web"
    )
    rule = client.post(
        f"/security-groups/{sg.id}/rules",
        data={
            "csrf_token": token,
            "direction": "ingress",
            "protocol": "tcp",
            "port_min": "443",
            "remote_cidr": "0.0.0.0/0",
        },
    )
    assert rule.status_code == 303, one_line_error(rule.text)
    sg = alice.networks.GetSecurityGroup(npb.GetSecurityGroupRequest(id=sg.id))
    (added,) = [r for r in sg.rules if r.port_range_min == 443]
    assert added.protocol == "tcp" and added.port_range_max == 443
    odd = client.post(
        f"/security-groups/{sg.id}/rules",
        data={"csrf_token": token, "direction": "sideways", "protocol": "tcp"},
    )
    assert one_line_error(odd.text) == "direction: one of ingress, egress [INVALID_ARGUMENT]"
    gone = client.post(f"/security-groups/{sg.id}/rules/{added.id}/delete", data={"csrf_token": token})
    assert gone.status_code == 303
    assert not [
        r
        for r in alice.networks.GetSecurityGroup(npb.GetSecurityGroupRequest(id=sg.id)).rules
        if r.id == added.id
    ]


def login_message(html: str) -> str:
    m = re.search(r'id="login-message">([^<]*)<', html)
    return m.group(1) if m else ""


def try_login(
    dash: DashboardProc,
    ctl: ControllerProc,
    user: str,
    password: str,
    device: str = "",
    **headers: str,
) -> httpx.Response:
    client = https(ctl, dash.url, headers=headers, cookies={"kumo_device": device} if device else None)
    page = client.get("/login")
    return client.post("/login", data={"csrf_token": csrf_of(page.text), "user": user, "password": password})


def test_repeated_failed_logins_are_refused_for_a_while(cloud: dict, tmp_path: Path) -> None:
    """Per user name (even with the right password then) and per client address; both end."""
    ctl = cloud["ctl"]
    args = ["--login-max-user-failures", "2", "--login-max-address-failures", "4", "--login-lockout", "3"]
    dash = DashboardProc(ctl, tmp_path, cloud["dash"].cert_file, cloud["dash"].key_file, extra_args=args)
    dash.start()
    try:
        for _ in range(2):
            assert try_login(dash, ctl, "dash-alice", "wrong").status_code == 401
        locked = try_login(dash, ctl, "dash-alice", "password-123")
        assert locked.status_code == 429, locked.text
        line = login_message(locked.text)
        assert line.startswith("too many failed logins for user dash-alice: try again in ")
        assert line.endswith(" s [RESOURCE_EXHAUSTED]") and int(locked.headers["retry-after"]) >= 1
        assert "kumo_session" not in locked.headers.get("set-cookie", "")
        # Another user from the same address is still let in (2 failures < 4).
        assert try_login(dash, ctl, "dash-bob", "password-123").status_code == 303
        wait_for(
            lambda: try_login(dash, ctl, "dash-alice", "password-123").status_code == 303,
            timeout=30,
            step=0.5,
            what="the user's lockout to end",
        )
        # Guessing across many user names trips the address's limit (its 2 failures above count).
        answers = [try_login(dash, ctl, f"nobody-{i}", "guess").status_code for i in range(3)]
        assert answers == [401, 401, 429], answers
        # A forwarded-for header is not believed: the address is the TCP peer.
        by_address = try_login(dash, ctl, "dash-bob", "password-123", **{"X-Forwarded-For": "10.9.9.9"})
        assert by_address.status_code == 429
        assert login_message(by_address.text).startswith("too many failed logins from this address")
        wait_for(
            lambda: try_login(dash, ctl, "dash-bob", "password-123").status_code == 303,
            timeout=30,
            step=0.5,
            what="the address's lockout to end",
        )
    finally:
        dash.stop()


def test_a_stranger_cannot_lock_a_user_out_of_a_browser_they_logged_in_from(
    cloud: dict, tmp_path: Path
) -> None:
    """Known devices: failures without the user's device cookie lock only logins
    without it; failures with it lock only that browser; the cookie is the
    dashboard's own (HttpOnly, Secure, SameSite=Strict) and bound to its user."""
    ctl = cloud["ctl"]
    args = ["--login-max-user-failures", "2", "--login-max-address-failures", "100", "--login-lockout", "600"]
    dash = DashboardProc(ctl, tmp_path, cloud["dash"].cert_file, cloud["dash"].key_file, extra_args=args)
    dash.start()
    try:
        first = try_login(dash, ctl, "dash-alice", "password-123")
        assert first.status_code == 303
        set_cookie = [v for k, v in first.headers.multi_items() if k == "set-cookie" and "kumo_device=" in v]
        assert len(set_cookie) == 1, first.headers
        attrs = set_cookie[0].lower()
        assert (
            "httponly" in attrs and "secure" in attrs and "samesite=strict" in attrs and "max-age=" in attrs
        )
        device = first.cookies["kumo_device"]
        for _ in range(2):  # a stranger (no device cookie) guesses alice's password
            assert try_login(dash, ctl, "dash-alice", "wrong").status_code == 401
        assert try_login(dash, ctl, "dash-alice", "password-123").status_code == 429
        # Alice's own browser still gets in, and is not given a second device cookie.
        mine = try_login(dash, ctl, "dash-alice", "password-123", device=device)
        assert mine.status_code == 303, login_message(mine.text)
        assert "kumo_device=" not in mine.headers.get("set-cookie", "")
        # The cookie is alice's: it does not exempt another user name.
        for _ in range(2):
            assert try_login(dash, ctl, "dash-bob", "wrong").status_code == 401
        bob = try_login(dash, ctl, "dash-bob", "password-123", device=device)
        assert bob.status_code == 429
        # Failures from alice's browser count against that browser only.
        for _ in range(2):
            assert try_login(dash, ctl, "dash-alice", "wrong", device=device).status_code == 401
        locked = try_login(dash, ctl, "dash-alice", "password-123", device=device)
        assert locked.status_code == 429
        assert login_message(locked.text).startswith(
            "too many failed logins for user dash-alice from this browser"
        )
        assert (tmp_path / "dashboard-state" / "devices.db").stat().st_mode & 0o777 == 0o600
    finally:
        dash.stop()


def test_sessions_survive_a_dashboard_restart_and_logout_ends_them(cloud: dict, tmp_path: Path) -> None:
    ctl = cloud["ctl"]
    dash = DashboardProc(ctl, tmp_path, cloud["dash"].cert_file, cloud["dash"].key_file).start()
    try:
        kept, _ = login(dash, ctl, "dash-alice", "password-123")
        ended, ended_csrf = login(dash, ctl, "dash-alice", "password-123")
        ended_sid = ended.cookies["kumo_session"]
        assert ended.post("/logout", data={"csrf_token": ended_csrf}).status_code == 303
        state = tmp_path / "dashboard-state"
        db = state / "sessions.db"
        assert oct(db.stat().st_mode & 0o777) == "0o600" and oct(state.stat().st_mode & 0o777) == "0o700"
        sid = kept.cookies["kumo_session"]
        assert sid.encode() not in db.read_bytes(), "rows are keyed by the id's hash"
        dash.stop()
        dash.start()
        kept.base_url = dash.url  # type: ignore[misc]
        page = kept.get("/servers")
        assert page.status_code == 200 and "dash-alice" in page.text, page.headers.get("location")
        # The CSRF token came through the restart too.
        token = re.search(r'<meta name="csrf-token" content="([^"]+)"', page.text)
        assert token
        made = kept.post("/keypairs", data={"name": "after-restart", "csrf_token": token.group(1)})
        assert made.status_code == 200 and "PRIVATE KEY" in made.text
        stale = https(ctl, dash.url, cookies={"kumo_session": ended_sid})
        assert stale.get("/servers").headers["location"] == "/login"
        import sqlite3

        with sqlite3.connect(db) as rows:
            assert rows.execute("SELECT count(*) FROM sessions").fetchone()[0] == 1
    finally:
        dash.stop()
        for kp in cloud["alice"].compute.ListKeypairs(cpb.ListKeypairsRequest()).keypairs:
            if kp.name == "after-restart":
                cloud["alice"].compute.DeleteKeypair(cpb.DeleteKeypairRequest(id=kp.id))
