"""The format check on real files made by qemu-img, and on crafted headers."""

from __future__ import annotations

import os
import struct
import subprocess
from pathlib import Path

import pytest

from controller.domain import imageformat
from controller.domain.imageformat import FormatRejected, inspect


def qemu_img(*args: str) -> None:
    # Making a LUKS-encrypted image, qemu-img times PBKDF2 by the thread's CPU
    # time and gives up now and then with "Unable to get accurate CPU usage"
    # (seen in CI and by hand on these machines: one try in three, then fine).
    # That is qemu-img timing itself, not the check under test: try again.
    for _ in range(5):
        done = subprocess.run(["qemu-img", *args], capture_output=True, text=True)
        if done.returncode == 0:
            return
        if "Unable to get accurate CPU usage" not in done.stderr:
            break
    raise AssertionError(f"qemu-img {' '.join(args)} failed: {done.stderr.strip()}")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("formats")
    qemu_img("create", "-f", "qcow2", str(d / "plain.qcow2"), "10M")
    qemu_img("create", "-f", "qcow2", "-o", "compat=0.10", str(d / "v2.qcow2"), "5M")
    qemu_img("create", "-f", "qcow2", "-b", "plain.qcow2", "-F", "qcow2", str(d / "backed.qcow2"))
    qemu_img("create", "-f", "qcow2", "-o", f"data_file={d / 'data.raw'}", str(d / "datafile.qcow2"), "10M")
    qemu_img(
        "create",
        "-f",
        "qcow2",
        "--object",
        "secret,id=s0,data=pw",
        "-o",
        "encrypt.format=luks,encrypt.key-secret=s0",
        str(d / "encrypted.qcow2"),
        "10M",
    )
    qemu_img("create", "-f", "vmdk", str(d / "disk.vmdk"), "10M")
    qemu_img("create", "-f", "vpc", str(d / "disk.vhd"), "10M")
    qemu_img("create", "-f", "vdi", str(d / "disk.vdi"), "10M")
    (d / "random.raw").write_bytes(b"\0" + os.urandom(3 * 1024 * 1024 + 5))
    iso_dir = d / "iso"
    iso_dir.mkdir()
    (iso_dir / "meta-data").write_text("instance-id: x\n")
    subprocess.run(
        ["genisoimage", "-quiet", "-V", "cidata", "-o", str(d / "cd.iso"), str(iso_dir)], check=True
    )
    return d


def test_good_images_pass_with_virtual_size(files: Path) -> None:
    assert inspect(files / "plain.qcow2", "qcow2").virtual_size == 10 * 1024 * 1024
    assert inspect(files / "v2.qcow2", "qcow2").virtual_size == 5 * 1024 * 1024
    raw = inspect(files / "random.raw", "raw")
    assert raw.virtual_size >= (files / "random.raw").stat().st_size
    assert inspect(files / "cd.iso", "raw").format == "raw"  # an ISO is a raw image


@pytest.mark.parametrize(
    ("name", "declared", "why"),
    [
        ("backed.qcow2", "qcow2", "backing file ('plain.qcow2')"),
        ("datafile.qcow2", "qcow2", "external data file"),
        ("encrypted.qcow2", "qcow2", "encrypted"),
        ("random.raw", "qcow2", "not a qcow2 image"),
        ("disk.vmdk", "qcow2", "vmdk"),
        ("plain.qcow2", "raw", "declared raw, but the data is a qcow2 image"),
        ("backed.qcow2", "raw", "qcow2"),
        ("disk.vmdk", "raw", "vmdk"),
        ("disk.vhd", "raw", "vpc"),
        ("disk.vdi", "raw", "vdi"),
        ("plain.qcow2", "vmdk", "unsupported disk format"),
    ],
)
def test_bad_images_are_rejected_with_a_reason(files: Path, name: str, declared: str, why: str) -> None:
    with pytest.raises(FormatRejected) as info:
        inspect(files / name, declared)
    assert why in str(info.value)


def _qcow2_v3(incompat: int = 0, extensions: bytes = b"") -> bytes:
    header = bytearray(104)
    header[0:4] = b"QFI\xfb"
    struct.pack_into(">I", header, 4, 3)
    struct.pack_into(">I", header, 20, 16)  # cluster_bits
    struct.pack_into(">Q", header, 24, 1 << 20)  # virtual size
    struct.pack_into(">Q", header, 72, incompat)
    struct.pack_into(">I", header, 96, 4)  # refcount_order
    struct.pack_into(">I", header, 100, 104)  # header_length
    return bytes(header) + extensions + b"\0" * 8


@pytest.mark.parametrize(
    ("head", "why"),
    [
        (_qcow2_v3(incompat=imageformat.INCOMPAT_DATA_FILE), "external data file"),
        (_qcow2_v3(incompat=imageformat.INCOMPAT_CORRUPT), "corrupt"),
        (_qcow2_v3(incompat=1 << 9), "unknown incompatible features"),
        # A data-file name extension without the feature bit is refused too.
        (_qcow2_v3(extensions=struct.pack(">II", 0x44415441, 8) + b"/etc/pwd"), "'/etc/pwd'"),
        (b"QFI\xfb" + struct.pack(">I", 1) + b"\0" * 64, "version 1"),
        (b"QFI\xfb\0\0", "magic"),
    ],
)
def test_crafted_qcow2_headers(head: bytes, why: str) -> None:
    with pytest.raises(FormatRejected) as info:
        imageformat.check_qcow2_header(head, len(head) + 1_000_000)
    assert why in str(info.value)


def test_a_crafted_header_that_passes_the_parser_still_meets_qemu_img(tmp_path: Path) -> None:
    """A qcow2 header with no tables is caught by qemu-img, the second line."""
    path = tmp_path / "hollow.qcow2"
    path.write_bytes(_qcow2_v3())
    with pytest.raises(FormatRejected, match="not a valid qcow2 image"):
        inspect(path, "qcow2")


def test_qemu_img_is_told_the_format_and_limited(files: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []
    real = subprocess.run

    def spy(cmd, **kw):  # type: ignore[no-untyped-def]
        seen.append(list(cmd))
        return real(cmd, **kw)

    monkeypatch.setattr(imageformat.subprocess, "run", spy)
    inspect(files / "plain.qcow2", "qcow2")
    inspect(files / "random.raw", "raw")
    assert len(seen) == 2
    for cmd, fmt in zip(seen, ["qcow2", "raw"], strict=True):
        i = cmd.index("qemu-img")
        assert cmd[i : i + 4] == ["qemu-img", "info", "-f", fmt]
        assert any(a.startswith("--as=") for a in cmd[:i])  # prlimit'ed
