"""`kumo node ...` and `kumo node token ...` through the real CLI."""

from __future__ import annotations

import json
import uuid

import pytest
import yaml

from kumo import jointoken
from kumo.v1 import identity_pb2 as idpb
from tests.harness import Client, ControllerProc, cli_login, make_user, run_cli
from tests.nodeutil import enroll, make_token


@pytest.fixture(scope="module")
def kumo(controller: ControllerProc, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    cfg = tmp_path_factory.mktemp("kumo-node-cli")

    def run(*args: str, ok: bool = True, config: str | None = None):  # type: ignore[no-untyped-def]
        result = run_cli(list(args), {"KUMO_CONFIG_DIR": config or str(cfg)})
        if ok:
            assert result.returncode == 0, f"kumo {' '.join(args)}: {result.stderr}"
        return result

    login = cli_login(controller, cfg)
    assert login.returncode == 0, login.stderr
    return run


def one_line_error(result, *fragments: str) -> None:  # type: ignore[no-untyped-def]
    assert result.returncode != 0
    err = result.stderr.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1 and "Traceback" not in result.stderr, err
    for f in fragments:
        assert f in err, err


def test_token_create_prints_just_the_token(kumo, controller: ControllerProc) -> None:  # type: ignore[no-untyped-def]
    result = kumo("node", "token", "create", "--ttl", "2h", "--uses", "3", "--description", "rack 7")
    token = result.stdout.strip()
    parsed = jointoken.parse_token(token)
    assert parsed.ca_fingerprint == controller.info["ca_fingerprint"]
    assert f"kumo-noded join {controller.endpoint}" in result.stderr
    listed = json.loads(kumo("node", "token", "list", "-o", "json").stdout)
    row = next(r for r in listed if r["id"] == parsed.token_id)
    assert row["max_uses"] == 3 and row["description"] == "rack 7" and row["state"] == "valid"
    assert parsed.secret not in json.dumps(listed)
    table = kumo("node", "token", "list").stdout
    assert parsed.token_id in table and "valid" in table
    as_json = json.loads(kumo("node", "token", "create", "-o", "json").stdout)
    assert as_json["token"].startswith("kumojoin1.") and as_json["join_token"]["max_uses"] == 1
    kumo("node", "token", "delete", parsed.token_id)
    one_line_error(kumo("node", "token", "delete", parsed.token_id, ok=False), "not found", "NOT_FOUND")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--ttl", "soon"], "not a duration"),
        (["--ttl", "0"], "ttl"),
        (["--ttl", "90d"], "ttl"),
        (["--uses", "0"], "--uses"),
        (["--uses", "1000000"], "max_uses"),
    ],
)
def test_token_create_errors(kumo, args: list[str], fragment: str) -> None:  # type: ignore[no-untyped-def]
    one_line_error(kumo("node", "token", "create", *args, ok=False), fragment)


def test_node_list_show_disable_enable_delete(kumo, controller: ControllerProc, admin: Client) -> None:  # type: ignore[no-untyped-def]
    name = f"cli-{uuid.uuid4().hex[:8]}"
    e = enroll(controller, make_token(admin), name)
    listed = json.loads(kumo("node", "list", "-o", "json").stdout)
    assert any(n["id"] == e.node_id and n["state"] == "down" for n in listed)
    assert name in kumo("node", "list").stdout
    shown = json.loads(kumo("node", "show", name, "-o", "json").stdout)
    assert shown["id"] == e.node_id
    text = kumo("node", "show", e.node_id).stdout
    assert "certificate serial" in text and "vcpus allocatable" in text
    assert shown["allocation"]["cpu_allocation_ratio"] == 4.0  # the controller's default overcommit

    disabled = json.loads(kumo("node", "disable", name, "--reason", "bad fan", "-o", "json").stdout)
    assert disabled["state"] == "disabled" and disabled["disabled_reason"] == "bad fan"
    one_line_error(kumo("node", "disable", name, ok=False), "disabled already", "FAILED_PRECONDITION")
    enabled = yaml.safe_load(kumo("node", "enable", name, "-o", "yaml").stdout)
    assert enabled["state"] == "down" and enabled["id"] == e.node_id  # never connected
    assert "down" in kumo("node", "show", name).stdout
    one_line_error(kumo("node", "enable", name, ok=False), "not disabled", "FAILED_PRECONDITION")
    result = kumo("node", "delete", name)
    assert f"deleted node {name}" in result.stdout
    one_line_error(kumo("node", "show", name, ok=False), "not found")
    one_line_error(kumo("node", "show", "00000000-0000-0000-0000-000000000000", ok=False), "NOT_FOUND")


def test_non_admins_get_one_line_errors(kumo, controller: ControllerProc, admin: Client, tmp_path) -> None:  # type: ignore[no-untyped-def]
    project = admin.identity.CreateProject(
        idpb.CreateProjectRequest(project=idpb.Project(name=f"cli-nodes-{uuid.uuid4().hex[:6]}"))
    )
    user = make_user(admin, project.id, f"cli-member-{uuid.uuid4().hex[:6]}", idpb.ROLE_MEMBER)
    cfg = str(tmp_path / "member")
    login = run_cli(
        [
            "login",
            "--endpoint",
            controller.endpoint,
            "--ca-file",
            controller.ca_file,
            "--user",
            user.name,
            "--password-stdin",
        ],
        {"KUMO_CONFIG_DIR": cfg},
        input="password-123\n",
    )
    assert login.returncode == 0, login.stderr
    one_line_error(kumo("node", "list", ok=False, config=cfg), "needs the admin role", "PERMISSION_DENIED")
    one_line_error(kumo("node", "token", "create", ok=False, config=cfg), "PERMISSION_DENIED")
