"""`kumo image ...`, the real CLI against a real controller: happy and error paths."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from kumo.v1 import image_pb2 as pb
from tests.harness import ADMIN_PASSWORD, ROOT, Client, ControllerProc, run_cli


@pytest.fixture(scope="module")
def cli(controller: ControllerProc, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    env = {"KUMO_CONFIG_DIR": str(tmp_path_factory.mktemp("kumo-image-cli"))}

    def run(*args: str, ok: bool = True, cwd_env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
        result = run_cli(list(args), {**env, **(cwd_env or {})})
        if ok:
            assert result.returncode == 0, f"kumo {' '.join(args)}: {result.stderr}"
        return result

    result = run_cli(
        ["login", "--endpoint", controller.endpoint, "--ca-file", controller.ca_file, "--user", "admin"],
        {**env, "KUMO_PASSWORD": ADMIN_PASSWORD},
    )
    assert result.returncode == 0, result.stderr
    run.env = env  # type: ignore[attr-defined]
    return run


@pytest.fixture(scope="module")
def disk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("disk") / "disk.qcow2"
    subprocess.run(["qemu-img", "create", "-f", "qcow2", str(path), "16M"], check=True, capture_output=True)
    # Some data inside, so the file is not all header.
    subprocess.run(
        ["qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 1M 3M", str(path)], check=True, capture_output=True
    )
    return path


def one_line_error(result, *fragments: str) -> str:  # type: ignore[no-untyped-def]
    """The command failed with one `error:` line (after any progress notes) and no traceback."""
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    err = lines[-1]
    assert err.startswith("error: "), result.stderr
    assert all(line.startswith(("resuming ", "uploading ", "downloading ")) for line in lines[:-1]), lines
    for f in fragments:
        assert f in err, err
    return err


def test_upload_list_show_download_set_delete(cli, disk: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    up = cli(
        "image",
        "upload",
        str(disk),
        "--name",
        "cli-disk",
        "--format",
        "qcow2",
        "--property",
        "os=none",
        "-o",
        "json",
    )
    image = json.loads(up.stdout)
    sha = hashlib.sha256(disk.read_bytes()).hexdigest()
    assert image["status"] == "active" and image["checksum_sha256"] == sha
    assert image["virtual_size_bytes"] == 16 * 1024 * 1024 and image["properties"] == {"os": "none"}
    assert "uploading cli-disk" in up.stderr and "MB/s" in up.stderr  # the progress summary

    table = cli("image", "list").stdout
    assert "cli-disk" in table and "active" in table and "qcow2" in table
    shown = json.loads(cli("image", "show", "cli-disk", "-o", "json").stdout)
    assert shown["id"] == image["id"]
    assert "virtual size" in cli("image", "show", image["id"]).stdout

    out = tmp_path / "copy.qcow2"
    got = cli("image", "download", "cli-disk", "--file", str(out))
    assert out.read_bytes() == disk.read_bytes() and sha in got.stdout
    one_line_error(cli("image", "download", "cli-disk", "--file", str(out), ok=False), "exists", "--force")
    cli("image", "download", "cli-disk", "--file", str(out), "--force")

    changed = json.loads(
        cli(
            "image",
            "set",
            "cli-disk",
            "--public",
            "--min-ram",
            "64",
            "--unset-property",
            "os",
            "--property",
            "arch=x86_64",
            "-o",
            "json",
        ).stdout
    )
    assert changed["visibility"] == "public" and changed["min_ram_mb"] == 64
    assert changed["properties"] == {"arch": "x86_64"}
    cli("image", "set", "cli-disk", "--protected")
    one_line_error(cli("image", "delete", "cli-disk", ok=False), "protected", "FAILED_PRECONDITION")
    cli("image", "set", "cli-disk", "--unprotected")
    assert "deleted image cli-disk" in cli("image", "delete", "cli-disk").stdout
    one_line_error(cli("image", "show", "cli-disk", ok=False), "not found")


def test_download_resumes_from_a_partial_file(cli, disk: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cli("image", "upload", str(disk), "--name", "cli-resume", "--format", "qcow2")
    data = disk.read_bytes()
    out = tmp_path / "resumed.qcow2"
    part = tmp_path / "resumed.qcow2.part"
    part.write_bytes(data[: len(data) // 3])
    got = cli("image", "download", "cli-resume", "--file", str(out))
    assert f"resuming {part} at byte {len(data) // 3}" in got.stderr
    assert out.read_bytes() == data and not part.exists()
    # A partial file that is not a prefix of the image fails the checksum and goes.
    part.write_bytes(b"\x01" * 1000)
    one_line_error(
        cli("image", "download", "cli-resume", "--file", str(out), "--force", ok=False),
        "sha256",
        "download again",
    )
    assert not part.exists()
    # --no-resume starts over.
    part.write_bytes(b"\x01" * 1000)
    cli("image", "download", "cli-resume", "--file", str(out), "--force", "--no-resume")
    assert out.read_bytes() == data


def test_download_to_stdout(cli, disk: Path) -> None:  # type: ignore[no-untyped-def]
    cli("image", "upload", str(disk), "--name", "cli-stdout", "--format", "qcow2")
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "image", "download", "cli-stdout", "--file", "-"],
        capture_output=True,
        env={**os.environ, **cli.env, "PYTHONPATH": f"{ROOT}:{ROOT / 'proto'}"},
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == disk.read_bytes()


def test_upload_errors(cli, disk: Path, tmp_path: Path, admin: Client) -> None:  # type: ignore[no-untyped-def]
    one_line_error(
        cli("image", "upload", str(tmp_path / "nope.img"), "--format", "raw", ok=False), "cannot read"
    )
    one_line_error(cli("image", "upload", str(tmp_path), "--format", "raw", ok=False))
    one_line_error(cli("image", "upload", str(disk), "--name", "x", ok=False), "--format is required")
    one_line_error(cli("image", "upload", str(disk), "--format", "vmdk", ok=False), "--format is required")
    one_line_error(
        cli("image", "upload", str(disk), "--format", "raw", "--property", "novalue", ok=False), "KEY=VALUE"
    )
    one_line_error(
        cli("image", "upload", str(disk), "--name", "bad name", "--format", "raw", ok=False),
        "INVALID_ARGUMENT",
    )
    # The bytes are not what --format says: the image is killed, with the reason.
    err = one_line_error(
        cli("image", "upload", str(disk), "--name", "cli-liar", "--format", "raw", ok=False),
        "declared raw, but the data is a qcow2 image",
        "is killed",
        "kumo image delete",
    )
    assert "INVALID_ARGUMENT" in err
    killed = json.loads(cli("image", "list", "--status", "killed", "-o", "json").stdout)
    assert [i["name"] for i in killed] == ["cli-liar"] and "declared raw" in killed[0]["status_reason"]
    # A wrong --sha256 leaves the image queued; --image retries the upload into it.
    err = one_line_error(
        cli(
            "image",
            "upload",
            str(disk),
            "--name",
            "cli-sum",
            "--format",
            "qcow2",
            "--sha256",
            "0" * 64,
            ok=False,
        ),
        "checksum mismatch",
        "is queued",
        "--image",
    )
    image_id = re.search(r"image ([0-9a-f-]{36}) is queued", err).group(1)  # type: ignore[union-attr]
    done = json.loads(cli("image", "upload", str(disk), "--image", image_id, "-o", "json").stdout)
    assert done["status"] == "active" and done["id"] == image_id
    one_line_error(cli("image", "upload", str(disk), "--image", image_id, ok=False), "already has its data")


def test_other_errors(cli, admin: Client, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    queued = admin.images.CreateImage(
        pb.CreateImageRequest(image=pb.Image(name="cli-queued", disk_format=pb.DISK_FORMAT_RAW))
    )
    one_line_error(cli("image", "download", queued.id, "--file", str(tmp_path / "q"), ok=False), "is queued")
    one_line_error(cli("image", "show", "no-such-image", ok=False), "not found")
    one_line_error(cli("image", "delete", "00000000-0000-4000-8000-000000000000", ok=False), "not found")
    one_line_error(cli("image", "list", "--status", "weird", ok=False), "--status")
    one_line_error(cli("image", "list", "--visibility", "weird", ok=False), "--visibility")
    one_line_error(cli("image", "set", "cli-queued", ok=False), "nothing to change")
    one_line_error(cli("image", "set", "cli-queued", "--min-disk", "-1", ok=False), "min_disk_gb")
    admin.images.CreateImage(
        pb.CreateImageRequest(image=pb.Image(name="cli-queued", disk_format=pb.DISK_FORMAT_RAW))
    )
    one_line_error(cli("image", "show", "cli-queued", ok=False), "2 images are named", "use the id")
