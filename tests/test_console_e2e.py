"""End to end: type a command into a real TCG guest's serial console through
`kumo server console --attach`, driven through a pty, and read the answer;
Ctrl-] leaves and the terminal's settings come back; `--follow` shows the
same exchange from the console log."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import termios
import time
from collections.abc import Iterator

import pytest

from kumo.v1 import compute_pb2 as pb
from tests.cloudutil import destroy_guests, libvirt_and_test_image, libvirt_cloud
from tests.harness import cli_login
from tests.netutil import state_dir
from tests.ptyutil import read_some, spawn_cli
from tests.waits import diagnose, wait_until

pytestmark = pytest.mark.e2e

COMMAND = b"echo KUMO-ANSWER-$((6*7))\r"
ANSWER = b"KUMO-ANSWER-42"


@pytest.fixture(scope="module")
def cloud() -> Iterator[dict]:
    libvirt_and_test_image()
    base = state_dir("kumo-console-e2e-")
    try:
        with libvirt_cloud(base, "console-host", "console.small", reconcile_seconds=5) as c:
            cfg = base / "cli"
            assert cli_login(c["ctl"], cfg).returncode == 0
            yield {**c, "env": {"KUMO_CONFIG_DIR": str(cfg)}}
    finally:
        destroy_guests(str(base))
        shutil.rmtree(base, ignore_errors=True)


def test_type_into_a_real_guest_console(cloud: dict) -> None:
    admin = cloud["admin"]
    inst = admin.compute.CreateInstance(
        pb.CreateInstanceRequest(name="typist", image="kumo-test", flavor="console.small")
    )

    def console() -> str:
        return admin.compute.GetConsoleOutput(pb.GetConsoleOutputRequest(id=inst.id)).output

    # KUMO-NICS comes just before the image starts its shell on ttyS0.
    wait_until(
        lambda: "KUMO-NICS" in console(), what="the guest booted", explain=lambda: diagnose(admin, inst.id)
    )

    # The image's shell prints nothing of its own (no prompt, no cursor
    # queries), so every marker stays at the start of its line.
    booted = console()
    assert re.search(r"^KUMO-NICS:", booted, re.M) and "\x1b[" not in booted and "/ # " not in booted, booted[
        -300:
    ]

    master, slave = os.openpty()
    before = termios.tcgetattr(slave)
    proc = spawn_cli(
        ["server", "console", "typist", "--attach"],
        cloud["env"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
    )
    seen = b""
    try:
        last_sent = 0.0

        def answered() -> bool:
            nonlocal seen, last_sent
            # The shell may not read yet (booting): type again every few seconds.
            if time.monotonic() - last_sent > 3:
                os.write(master, COMMAND)
                last_sent = time.monotonic()
            seen += read_some(master, 0.5)
            assert proc.poll() is None, f"the CLI exited: {seen[-500:]!r}"
            return ANSWER in seen

        wait_until(answered, what="the guest's answer through --attach", explain=lambda: repr(seen[-800:]))
        assert b"Ctrl-] to leave" in seen
        assert termios.tcgetattr(slave)[3] & termios.ECHO == 0, "the CLI puts its terminal in raw mode"
        os.write(master, b"\x1d")  # Ctrl-]
        assert proc.wait(30) == 0, seen[-500:]
        seen += read_some(master, 1)
        assert b"Console closed." in seen
        assert termios.tcgetattr(slave) == before, "the terminal's settings came back"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
        os.close(slave)

    # The exchange is in the log: GetConsoleOutput (the node's log now) and --follow.
    assert re.search(rf"^{ANSWER.decode()}\r?$", console(), re.M), console()[-500:]
    follower = spawn_cli(["server", "console", "typist", "--follow"], cloud["env"], stdout=subprocess.PIPE)
    try:
        assert follower.stdout is not None
        out = follower.stdout.fileno()
        got = b""

        def followed() -> bool:
            nonlocal got
            got += read_some(out, 0.5)
            return ANSWER in got

        wait_until(followed, what="the answer through --follow", explain=lambda: repr(got[-500:]))
    finally:
        follower.terminate()
        follower.wait(10)
