"""What `kumo server list` builds and imports before it talks to the controller (its start-up
time), and that a table's narrowed conversion is the full one's columns."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import typer.main

from cli import main as cli_main
from cli.output import to_data
from kumo.v1 import compute_pb2 as pb

ROOT = Path(__file__).resolve().parent.parent


def _server_commands(command: str) -> list[str]:
    group = typer.main.get_command(cli_main.build_app("server", command))
    return sorted(group.commands["server"].commands)  # type: ignore[attr-defined]


def test_a_command_line_builds_only_its_command() -> None:
    assert _server_commands("list") == ["list"]
    assert _server_commands("migration") == ["migration"]  # a nested group, whole
    whole = _server_commands("")
    assert "list" in whole and "show" in whole and len(whole) > 5
    assert _server_commands("lis") == whole  # not a command: click names the near one


def test_command_of_reads_the_command_after_the_group() -> None:
    assert cli_main.command_of(["server", "list", "--name", "x"], "server") == "list"
    assert cli_main.command_of(["--profile", "p", "server", "show", "a"], "server") == "show"
    assert cli_main.command_of(["server", "--help"], "server") == ""
    assert cli_main.command_of(["server"], "server") == ""
    assert cli_main.command_of(["--help"], "") == ""


def test_server_list_imports_no_other_service_messages() -> None:
    code = (
        "import sys, cli.main as m, typer.main; typer.main.get_command(m.build_app('server', 'list'));"
        "print(sorted(k for k in sys.modules if k.endswith('_pb2') and k.startswith('kumo.')))"
    )
    env = dict(os.environ, PYTHONPATH=f"{ROOT}:{ROOT / 'proto'}")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['kumo.v1.compute_pb2']"


def test_a_whole_server_list_run_imports_no_other_service_messages() -> None:
    """Not just the command tree: running `server list` (no --node/--project name to look up)
    loads no other command's module or service messages either, and asks for the largest page."""
    code = (
        "import sys, cli.main as m, cli.commands.server as s\n"
        "from kumo.v1 import compute_pb2 as pb\n"
        "class Stub:\n"
        "    def ListInstances(self, req):\n"
        "        print(req.page_size)\n"
        "        return pb.ListInstancesResponse(instances=[pb.Instance(id='i-1', name='a')])\n"
        "s.stub = Stub\n"
        "m.build_app('server', 'list')(['server', 'list'], prog_name='kumo', standalone_mode=False)\n"
        "import json; print(json.dumps(sorted(k for k in sys.modules if k.startswith(('cli.commands.', 'kumo.v1.')))))"
    )
    env = dict(os.environ, PYTHONPATH=f"{ROOT}:{ROOT / 'proto'}")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    lines = out.stdout.strip().splitlines()
    assert lines[0] == "1000" and "i-1" in lines[2]
    loaded = json.loads(lines[-1])
    assert [k for k in loaded if k.endswith("_pb2")] == ["kumo.v1.compute_pb2"]
    assert "cli.commands.node" not in loaded and "cli.commands.project" not in loaded


def test_a_tables_conversion_is_the_full_one_narrowed() -> None:
    inst = pb.Instance(
        id="i-1", name="a", state=pb.INSTANCE_STATE_ACTIVE, power_state=99, vcpus=2, volume_ids=["v"]
    )
    inst.create_time.FromSeconds(1_700_000_000)
    full = to_data(inst)
    only = frozenset({"id", "state", "power_state", "task", "volume_ids", "create_time"})
    assert to_data(inst, only) == {k: v for k, v in full.items() if k in only}
    assert full["state"] == "active" and full["power_state"] == 99  # an unknown number as is
    assert to_data(pb.Instance(), frozenset({"state"})) == {"state": None}


def test_the_cli_asks_for_the_apis_largest_page() -> None:
    """A thousand servers in one round trip: the CLI's page is the controller's maximum (a larger
    ask would be served as the maximum; a smaller one costs a round trip per page)."""
    from cli.client import PAGE_SIZE
    from controller.db.paging import MAX_PAGE_SIZE

    assert PAGE_SIZE == MAX_PAGE_SIZE
