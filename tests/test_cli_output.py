"""The CLI's output for scripts against a real controller: one conversion for JSON/YAML (enums as in
tables, numbers as numbers, RFC 3339 times), -c/--column, -f value|csv, and -o as an alias of -f."""

from __future__ import annotations

import csv
import datetime
import io
import json
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from bench.procs import make_image
from cli.output import to_data
from kumo.v1 import compute_pb2, image_pb2, network_pb2
from tests.harness import Client, ControllerProc, cli_login, run_cli


@pytest.fixture(scope="module")
def kumo(
    controller: ControllerProc, admin: Client, tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., Any]:
    cfg = tmp_path_factory.mktemp("kumo-output")
    assert cli_login(controller, cfg).returncode == 0
    make_image(admin, "out-disk", b"\0" * 4096)

    def run(*args: str, ok: bool = True) -> Any:
        result = run_cli(list(args), {"KUMO_CONFIG_DIR": str(cfg)})
        if ok:
            assert result.returncode == 0, f"kumo {' '.join(args)}: {result.stderr}"
        return result

    return run


def _rfc3339(text: str) -> datetime.datetime:
    assert text.endswith("Z") and "T" in text, text
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_json_enums_numbers_and_times_as_tables_show_them(kumo) -> None:  # type: ignore[no-untyped-def]
    shown = json.loads(kumo("image", "show", "out-disk", "-o", "json").stdout)
    assert shown["disk_format"] == "raw" and shown["status"] == "active" and shown["visibility"] == "private"
    assert shown["size_bytes"] == 4096 and isinstance(shown["virtual_size_bytes"], int)
    assert _rfc3339(shown["create_time"]) <= datetime.datetime.now(datetime.UTC)
    table = kumo("image", "show", "out-disk").stdout
    assert "raw" in table and "active" in table
    # Every field is present, in field order, whatever its value: a script can rely on the keys.
    assert list(shown) == [f.name for f in image_pb2.Image.DESCRIPTOR.fields]
    assert yaml.safe_load(kumo("image", "show", "out-disk", "-f", "yaml").stdout) == shown

    flavor = json.loads(
        kumo(
            "flavor", "create", "out.small", "--vcpus", "2", "--ram", "256", "--disk", "3", "-f", "json"
        ).stdout
    )
    assert (flavor["vcpus"], flavor["ram_mb"], flavor["disk_gb"], flavor["is_public"]) == (2, 256, 3, True)
    group = json.loads(
        kumo("server-group", "create", "out-grp", "--policy", "anti-affinity", "-f", "json").stdout
    )
    assert group["policy"] == "anti_affinity" and group["member_ids"] == []


def test_columns_and_value_csv_formats(kumo) -> None:  # type: ignore[no-untyped-def]
    kumo("flavor", "create", "out.tiny", "--vcpus", "1", "--ram", "128", "--disk", "1")
    value = kumo("flavor", "list", "-f", "value", "-c", "name", "-c", "vcpus").stdout.splitlines()
    assert "out.tiny 1" in value
    rows = list(csv.DictReader(io.StringIO(kumo("flavor", "list", "-f", "csv").stdout)))
    tiny = next(r for r in rows if r["name"] == "out.tiny")
    assert tiny["vcpus"] == "1" and tiny["ram_mb"] == "128" and tiny["is_public"] == "true"
    # A table heading works as a column name too, and any field of the result (not only the table's).
    assert kumo("flavor", "show", "out.tiny", "-f", "value", "-c", "ram mb", "-c", "description").stdout == (
        "128\n\n"
    )
    only = json.loads(kumo("flavor", "show", "out.tiny", "-f", "json", "-c", "id", "-c", "disk_gb").stdout)
    assert list(only) == ["id", "disk_gb"] and only["disk_gb"] == 1
    table = kumo("image", "list", "-c", "name", "-c", "format").stdout
    header = table.splitlines()[0].split()
    assert header == ["name", "format"] and "out-disk" in table and "raw" in table
    image_id = kumo("image", "show", "out-disk", "-f", "value", "-c", "id").stdout.strip()
    assert json.loads(kumo("image", "show", image_id, "-o", "json").stdout)["name"] == "out-disk"
    bad = kumo("flavor", "list", "-c", "nope", ok=False)
    assert bad.returncode != 0 and bad.stderr.startswith("error: unknown column 'nope'"), bad.stderr
    assert "Traceback" not in bad.stderr


def test_to_data_is_the_one_conversion() -> None:
    inst = compute_pb2.Instance(id="i", state=compute_pb2.INSTANCE_STATE_ACTIVE, vcpus=2, ram_mb=512)
    data = to_data(inst)
    assert data["state"] == "active" and data["vcpus"] == 2
    assert data["launch_time"] is None and data["nics"] == [] and data["task"] == ""
    unset = to_data(network_pb2.Subnet(cidr="10.0.0.0/24"))
    assert unset["ipv6_address_mode"] is None  # the zero (UNSPECIFIED) value of any enum
    image = to_data(image_pb2.Image(properties={"b": "2", "a": "1"}, size_bytes=2**40))
    assert list(image["properties"]) == ["a", "b"] and image["size_bytes"] == 2**40
    json.dumps(data)


def test_list_filters_reach_the_list_rpcs(kumo) -> None:  # type: ignore[no-untyped-def]
    def names(*args: str) -> list[str]:
        return kumo(*args, "-f", "value", "-c", "name").stdout.splitlines()

    kumo("network", "create", "out-net-a")
    kumo("network", "create", "out-net-b")
    assert names("network", "list", "--name", "out-net-a") == ["out-net-a"]
    kumo("subnet", "create", "out-sub", "--network", "out-net-a", "--cidr", "10.77.0.0/24")
    kumo("subnet", "create", "out-sub-b", "--network", "out-net-b", "--cidr", "10.78.0.0/24")
    assert names("subnet", "list", "--name", "out-sub") == ["out-sub"]
    assert names("subnet", "list", "--network", "out-net-b") == ["out-sub-b"]
    kumo("port", "create", "--network", "out-net-a", "--name", "out-port")
    kumo("port", "create", "--network", "out-net-b", "--name", "out-port-b")
    assert names("port", "list", "--name", "out-port") == ["out-port"]
    assert names("port", "list", "--network", "out-net-b") == ["out-port-b"]
    assert names("security-group", "list", "--name", "default") == ["default"]
    assert names("project", "list", "--name", "admin") == ["admin"]
    assert names("user", "list", "--name", "admin") == ["admin"]
    assert names("node", "list", "--name", "no-such-node") == []
    kumo("keypair", "create", "out-key")
    assert names("keypair", "list", "--name", "out-key") == ["out-key"]
    kumo("flavor", "create", "out.f1", "--vcpus", "1", "--ram", "64")
    assert names("flavor", "list", "--name", "out.f1") == ["out.f1"]
    kumo("server-group", "create", "out-sg1", "--policy", "affinity")
    assert names("server-group", "list", "--name", "out-sg1") == ["out-sg1"]
    assert "out-disk" in names("image", "list", "--project", "admin")
    assert names("image", "list", "--name", "out-disk", "--status", "active") == ["out-disk"]
    assert names("server", "list", "--state", "active") == []
    assert names("volume", "list", "--state", "in-use", "--name", "x") == []
    assert names("volume", "snapshot", "list", "--name", "x") == []
    bad = kumo("server", "list", "--state", "sleeping", ok=False)
    assert bad.returncode != 0 and "--state 'sleeping': use one of building, active" in bad.stderr
