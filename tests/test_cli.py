"""The real `kumo` CLI against a real controller: happy paths and error paths."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.harness import ADMIN_PASSWORD, ControllerProc, run_cli


@pytest.fixture(scope="module")
def cli(controller: ControllerProc, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    cfg = tmp_path_factory.mktemp("kumo-config")
    env = {"KUMO_CONFIG_DIR": str(cfg)}

    def run(*args: str, input: str | None = None, extra: dict[str, str] | None = None, ok: bool = True):  # type: ignore[no-untyped-def]
        result = run_cli(list(args), {**env, **(extra or {})}, input=input)
        if ok:
            assert result.returncode == 0, f"kumo {' '.join(args)}: {result.stderr}"
        return result

    login = run(
        "login",
        "--endpoint",
        controller.endpoint,
        "--ca-file",
        controller.ca_file,
        "--user",
        "admin",
        "--password-stdin",
        "-o",
        "json",
        input=ADMIN_PASSWORD + "\n",
    )
    assert json.loads(login.stdout)["user_name"] == "admin"
    run.config_dir = cfg  # type: ignore[attr-defined]
    return run


def assert_one_line_error(result, *fragments: str) -> None:  # type: ignore[no-untyped-def]
    assert result.returncode != 0
    err = result.stderr.strip()
    assert "Traceback" not in result.stderr
    assert err.startswith("error: "), err
    assert len(err.splitlines()) == 1, err
    for f in fragments:
        assert f in err, err


def test_login_stores_token_privately(cli) -> None:  # type: ignore[no-untyped-def]
    cfg: Path = cli.config_dir
    assert (cfg / "config.json").stat().st_mode & 0o777 == 0o600
    stored = json.loads((cfg / "config.json").read_text())
    assert stored["token"].startswith("kumo1.")
    who = json.loads(cli("whoami", "-o", "json").stdout)
    assert who["project_name"] == "admin" and who["role"] == "admin"


def test_project_lifecycle(cli) -> None:  # type: ignore[no-untyped-def]
    made = json.loads(
        cli("project", "create", "cli-proj", "--description", "from the CLI", "-o", "json").stdout
    )
    listed = json.loads(cli("project", "list", "-o", "json").stdout)
    assert made["id"] in {p["id"] for p in listed}
    shown = yaml.safe_load(cli("project", "show", "cli-proj", "-o", "yaml").stdout)
    assert shown["id"] == made["id"] and shown["description"] == "from the CLI"
    by_id = json.loads(cli("project", "show", made["id"], "-o", "json").stdout)
    assert by_id["name"] == "cli-proj"
    table = cli("project", "list").stdout
    assert "cli-proj" in table and made["id"] in table
    changed = json.loads(cli("project", "set", "cli-proj", "--description", "changed", "-o", "json").stdout)
    assert changed["description"] == "changed"
    assert "deleted project cli-proj" in cli("project", "delete", "cli-proj").stdout
    assert_one_line_error(cli("project", "show", "cli-proj", ok=False), "not found")


def test_users_and_roles(cli, controller: ControllerProc) -> None:  # type: ignore[no-untyped-def]
    cli("project", "create", "team")
    user = json.loads(
        cli(
            "user",
            "create",
            "gina",
            "--project",
            "team",
            "-o",
            "json",
            extra={"KUMO_NEW_PASSWORD": "gina-password"},
        ).stdout
    )
    assert user["name"] == "gina"
    role = json.loads(cli("role", "add", "gina", "team", "member", "-o", "json").stdout)
    assert role["role"] == "member" and role["project_name"] == "team"
    roles = json.loads(cli("role", "list", "--project", "team", "-o", "json").stdout)
    assert [(r["user_name"], r["role"]) for r in roles] == [("gina", "member")]
    assert "gina" in cli("user", "list").stdout
    assert json.loads(cli("user", "show", "gina", "-o", "json").stdout)["id"] == user["id"]
    cli("user", "set-password", "gina", extra={"KUMO_NEW_PASSWORD": "gina-password-2"})
    assert controller.login("gina", "gina-password-2").who.role == 2
    assert_one_line_error(cli("role", "add", "gina", "team", "superuser", ok=False), "unknown role")
    cli("role", "remove", "gina", "team", "member")
    assert json.loads(cli("role", "list", "--project", "team", "-o", "json").stdout) == []
    cli("user", "delete", "gina")
    assert_one_line_error(cli("user", "show", "gina", ok=False), "not found")


def test_member_gets_a_clear_permission_error(cli, controller: ControllerProc, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cli("project", "create", "small")
    cli("user", "create", "hank", "--project", "small", extra={"KUMO_NEW_PASSWORD": "hank-password"})
    cli("role", "add", "hank", "small", "member")
    env = {"KUMO_CONFIG_DIR": str(tmp_path)}
    login = run_cli(
        [
            "login",
            "--endpoint",
            controller.endpoint,
            "--ca-file",
            controller.ca_file,
            "--user",
            "hank",
            "--password-stdin",
        ],
        env,
        input="hank-password\n",
    )
    assert login.returncode == 0, login.stderr
    assert_one_line_error(run_cli(["project", "create", "mine"], env), "PERMISSION_DENIED", "admin")
    listed = json.loads(run_cli(["project", "list", "-o", "json"], env).stdout)
    assert [p["name"] for p in listed] == ["small"]


def test_error_paths(cli, controller: ControllerProc, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    env = {"KUMO_CONFIG_DIR": str(tmp_path)}
    assert_one_line_error(run_cli(["whoami"], env), "not logged in")
    assert_one_line_error(
        run_cli(["login", "--user", "admin", "--password-stdin"], env, input="x\n"), "--endpoint"
    )
    bad = run_cli(
        [
            "login",
            "--endpoint",
            controller.endpoint,
            "--ca-file",
            controller.ca_file,
            "--user",
            "admin",
            "--password-stdin",
        ],
        env,
        input="wrong-password\n",
    )
    assert_one_line_error(bad, "password")
    missing_ca = run_cli(
        [
            "login",
            "--endpoint",
            controller.endpoint,
            "--ca-file",
            "/nonexistent/ca.crt",
            "--user",
            "admin",
            "--password-stdin",
        ],
        env,
        input="x\n",
    )
    assert_one_line_error(missing_ca, "/nonexistent/ca.crt")
    down = run_cli(
        ["project", "list"],
        {
            **env,
            "KUMO_ENDPOINT": "127.0.0.1:1",
            "KUMO_TOKEN": "kumo1.x.y",
            "KUMO_CA_FILE": controller.ca_file,
        },
    )
    assert_one_line_error(down, "cannot reach")
    assert_one_line_error(cli("project", "create", "bad name!", ok=False), "INVALID_ARGUMENT", "name")
    cli("project", "create", "twice")
    assert_one_line_error(cli("project", "create", "twice", ok=False), "ALREADY_EXISTS")
    usage = cli("project", "create", ok=False)
    assert usage.returncode == 2 and "Traceback" not in usage.stderr


def test_env_token_overrides_stored(cli, controller: ControllerProc, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    token = controller.login().token
    env = {
        "KUMO_CONFIG_DIR": str(tmp_path),
        "KUMO_ENDPOINT": controller.endpoint,
        "KUMO_CA_FILE": controller.ca_file,
        "KUMO_TOKEN": token,
    }
    who = json.loads(run_cli(["whoami", "-o", "json"], env).stdout)
    assert who["user_name"] == "admin"


def test_logout_revokes(cli, controller: ControllerProc) -> None:  # type: ignore[no-untyped-def]
    token = json.loads((cli.config_dir / "config.json").read_text())["token"]
    assert "logged out" in cli("logout").stdout
    env = {"KUMO_CONFIG_DIR": str(cli.config_dir), "KUMO_TOKEN": token}
    assert_one_line_error(run_cli(["whoami"], env), "revoked")
    assert_one_line_error(cli("whoami", ok=False), "not logged in")


def test_controller_list_and_token_key_rotation(cli, controller: ControllerProc) -> None:  # type: ignore[no-untyped-def]
    (me,) = json.loads(cli("controller", "list", "-o", "json").stdout)
    assert me["endpoint"] == controller.endpoint and me["state"] == "up" and me["version"]
    said = cli("controller", "rotate-token-key").stdout
    assert said.startswith("new token signing key ")
    # The stored token was signed with the old key: it keeps working.
    assert "admin" in cli("user", "list").stdout
