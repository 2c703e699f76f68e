"""`make up` end to end: one READY node, default flavors, the test image, and
the boot command it prints boots a real guest (libvirt, qemu TCG).

In a module of its own: every kumo node daemon on a host reconciles all of the
host's kumo guests, so no other test's node may be running at the same time."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from noded.network.names import bridge_name
from tests.harness import ROOT
from tests.test_compute_e2e import virsh
from tests.waits import LoadScaledDeadline, diagnose, wait_until

pytestmark = pytest.mark.e2e


def test_make_up_boots_a_guest_with_the_printed_command() -> None:
    """`make up` (controller.allinone): one READY node, default flavors, the
    test image, and the command it prints boots a guest."""
    import signal
    import sys

    from tests.harness import run_cli
    from tests.nodeutil import free_port, noded_env

    base = Path(tempfile.mkdtemp(prefix="kumo-up-", dir="/var/tmp"))
    base.chmod(0o755)
    data = base / "kumo"
    port, node_port = free_port(), free_port()
    env = noded_env()
    env.update(
        {
            "KUMO_DATA_DIR": str(data),
            "KUMO_LISTEN": f"127.0.0.1:{port}",
            "KUMO_NODE_LISTEN": f"127.0.0.1:{node_port}",
            "KUMO_ADMIN_PASSWORD": "allinone-pw-2",
            "KUMO_VIRT_TYPE": "qemu",
            "KUMO_NODE_HEARTBEAT_SECONDS": "1",
            "KUMO_DASHBOARD_LISTEN": "127.0.0.1:0",
            "KUMO_METRICS_LISTEN": "127.0.0.1:0",
        }
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "controller.allinone"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines: list[str] = []
        deadline = LoadScaledDeadline(120)
        assert proc.stdout is not None
        while not deadline.expired() and not any("Ctrl-C stops the cloud." in ln for ln in lines):
            lines.append(proc.stdout.readline())
        text = "".join(lines)
        assert "READY (qemu" in text, text
        login = next(ln.strip() for ln in lines if "kumo login" in ln)
        boot = next(ln.strip() for ln in lines if "kumo server create" in ln)
        cfg = {"KUMO_CONFIG_DIR": str(base / "cfg")}
        args = [*login.split()[1:], "--password-stdin"]
        assert run_cli(args, cfg, input="allinone-pw-2\n").returncode == 0
        made = run_cli(boot.split()[1:], cfg, timeout=300)
        assert made.returncode == 0, made.stderr
        assert "demo: active" in made.stderr
        shown = run_cli(["server", "show", "demo", "-o", "json"], cfg)
        iid = __import__("json").loads(shown.stdout)["id"]

        def explain() -> str:
            """What the CLI says of the server and the node, and the guest's account."""
            nodes = __import__("json").loads(run_cli(["node", "list", "-o", "json"], cfg).stdout or "[]")
            shows = [run_cli(["server", "show", "demo"], cfg).stdout]
            shows += [run_cli(["node", "show", n["id"]], cfg).stdout for n in nodes]
            console = run_cli(["server", "console", "demo"], cfg).stdout
            return "\n".join([*shows, diagnose(console=console, domain=f"kumo-{iid}")])

        wait_until(
            lambda: f"instance-id: {iid}" in run_cli(["server", "console", "demo"], cfg).stdout,
            what="the demo guest's instance-id on its console",
            step=1,
            explain=explain,
        )
        # The shared default network: the guest got its port's address by DHCP,
        # and the host reaches it once the default group admits ICMP.
        ip = __import__("json").loads(shown.stdout)["nics"][0]["ip_addresses"][0]
        assert ip.startswith("10.199.0."), ip
        wait_until(
            lambda: f"KUMO-IP: {ip}" in run_cli(["server", "console", "demo"], cfg).stdout,
            what=f"KUMO-IP: {ip} on the demo guest's console",
            step=1,
            explain=explain,
        )
        rule = ["security-group", "rule", "create", "default", "--protocol", "icmp"]
        assert run_cli(rule, cfg).returncode == 0
        wait_until(
            lambda: subprocess.run(["ping", "-c1", "-W1", ip], capture_output=True).returncode == 0,
            what=f"the host pinging the guest at {ip}",
            base=60,
            step=1,
            explain=explain,
        )
        # kumo-net's router to the host-local external network: a floating IP
        # of kumo-ext reaches the guest from the host (ICMP, and TCP once the
        # group admits it), and goes with its rules when deleted.
        port_id = __import__("json").loads(shown.stdout)["nics"][0]["port_id"]
        made_fip = run_cli(
            ["floating-ip", "create", "--network", "kumo-ext", "--port", port_id, "-o", "json"], cfg
        )
        assert made_fip.returncode == 0, made_fip.stderr
        fip = __import__("json").loads(made_fip.stdout)["floating_ip_address"]
        assert fip.startswith("10.198.0."), fip
        assert f"floating {fip}" in run_cli(["server", "show", "demo"], cfg).stdout
        wait_until(
            lambda: subprocess.run(["ping", "-c1", "-W1", fip], capture_output=True).returncode == 0,
            what=f"the host pinging the guest through its floating IP {fip}",
            base=60,
            step=1,
            explain=explain,
        )

        def http_via_fip() -> str:
            got = subprocess.run(["curl", "-s", "-m", "3", f"http://{fip}/"], capture_output=True, text=True)
            return got.stdout

        assert f"instance-id: {iid}" not in http_via_fip()  # no rule for TCP 80 yet
        web = ["security-group", "rule", "create", "default", "--protocol", "tcp", "--port", "80"]
        assert run_cli(web, cfg).returncode == 0
        wait_until(
            lambda: f"instance-id: {iid}" in http_via_fip(),
            what=f"the guest's web server through its floating IP {fip}",
            base=60,
            step=1,
            explain=explain,
        )
        assert run_cli(["floating-ip", "delete", fip], cfg).returncode == 0
        wait_until(
            lambda: (
                fip not in subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True).stdout
            ),
            what=f"the rules of floating IP {fip} removed",
            base=60,
            step=1,
            explain=explain,
        )
        net = __import__("json").loads(run_cli(["network", "show", "kumo-net", "-o", "json"], cfg).stdout)
        bridge = bridge_name(net["id"])
        assert subprocess.run(["ip", "link", "show", bridge], capture_output=True).returncode == 0
        assert run_cli(["server", "delete", "demo", "--wait"], cfg).returncode == 0
        # No port of the network is left on the node: its bridge and DHCP go.
        wait_until(
            lambda: subprocess.run(["ip", "link", "show", bridge], capture_output=True).returncode != 0,
            what=f"bridge {bridge} removed",
            base=60,
            step=1,
            explain=explain,
        )
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        for name in virsh("list", "--all", "--name").split():
            # Only this cloud's guests: other node daemons may run on this host.
            if name.startswith("kumo-") and str(base) in virsh("dumpxml", name):
                virsh("destroy", name)
                virsh("undefine", name)
        shutil.rmtree(base, ignore_errors=True)
