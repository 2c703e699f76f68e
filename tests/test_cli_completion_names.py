"""Shell completion of resource names through the API (the real completion
protocol, a real controller): names of what the profile's user may see, and
nothing at all (quickly, silently) when the controller cannot be asked."""

from __future__ import annotations

import time
from pathlib import Path

from tests.harness import ControllerProc, cli_login, run_cli
from tests.nodeutil import free_port


def complete(env: dict[str, str], words: str) -> tuple[set[str], str, float]:
    started = time.monotonic()
    parts = words.split(" ")
    result = run_cli(
        [], {**env, "_KUMO_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(len(parts) - 1)}
    )
    assert result.returncode == 0, result.stderr
    return set(result.stdout.split()), result.stderr, time.monotonic() - started


def test_resource_names_complete(controller: ControllerProc, tmp_path: Path) -> None:
    env = {"KUMO_CONFIG_DIR": str(tmp_path / "cfg")}
    assert cli_login(controller, tmp_path / "cfg").returncode == 0
    for name in ("compl-net1", "compl-net2", "other-net"):
        assert run_cli(["network", "create", name], env).returncode == 0
    assert run_cli(["flavor", "create", "compl-small", "--vcpus", "1", "--ram", "256"], env).returncode == 0

    names, err, _ = complete(env, "kumo network show compl-")
    assert names == {"compl-net1", "compl-net2"} and not err
    assert "other-net" in complete(env, "kumo network delete ")[0]
    assert complete(env, "kumo flavor show compl")[0] == {"compl-small"}
    assert complete(env, "kumo server create vm --flavor compl")[0] == {"compl-small"}
    assert complete(env, "kumo server show ")[0] == set()  # no servers: nothing, no error

    # Nothing to ask: not logged in, or a controller that does not answer.
    nobody = {"KUMO_CONFIG_DIR": str(tmp_path / "empty")}
    names, err, _ = complete(nobody, "kumo network show ")
    assert names == set() and err == ""
    gone = {**env, "KUMO_ENDPOINT": f"127.0.0.1:{free_port()}"}
    names, err, took = complete(gone, "kumo network show ")
    assert names == set() and err == ""
    assert took < 15, f"completion took {took:.1f} s against a dead endpoint"
