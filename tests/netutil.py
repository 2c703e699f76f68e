"""Helpers for the network tests: network namespaces as hosts and guests,
and running the node's network step inside a namespace, as noded would."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kumo.v1 import node_agent_pb2 as pb
from tests.harness import ROOT

UDHCPC_SCRIPT = """#!/bin/sh
case "$1" in
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    for r in $router; do ip route replace default via "$r" dev "$interface"; break; done
    echo "LEASE $ip ROUTER $router DNS $dns MTU $mtu HOST $hostname DOMAIN $domain" ;;
esac
exit 0
"""


def need_root_networking() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces, bridges, nftables)")
    for tool in ("ip", "bridge", "nft", "dnsmasq", "busybox"):
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool} (see scripts/apt-packages.txt)")


def sh(*args: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed: {proc.stderr.strip()}")
    return proc


def ns(name: str, *args: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return sh("ip", "netns", "exec", name, *args, check=check, timeout=timeout)


class Namespaces:
    """Namespaces made by a test, removed with everything in them (the
    processes started in them first: a dnsmasq would keep one alive)."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def add(self, name: str) -> str:
        sh("ip", "netns", "del", name, check=False)
        sh("ip", "netns", "add", name)
        self.names.append(name)
        ns(name, "ip", "link", "set", "lo", "up")
        return name

    def cleanup(self) -> None:
        for name in reversed(self.names):
            pids = sh("ip", "netns", "pids", name, check=False).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            sh("ip", "netns", "del", name, check=False)
        self.names.clear()


def state_dir(prefix: str) -> Path:
    """A fresh directory under /var/tmp with 0755 (pytest's own are 0700
    root), for node state that dnsmasq (dropping to nobody) and qemu
    (libvirt-qemu) must reach below."""
    d = Path(tempfile.mkdtemp(prefix=prefix, dir="/var/tmp"))
    d.chmod(0o755)
    return d


@contextlib.contextmanager
def two_hosts(hosts: dict[str, str], guests: Iterable[str], prefix: str) -> Iterator[dict[str, Path]]:
    """Two "hosts" (namespace name -> underlay address) joined by a veth pair
    (`<host>-u` in each), a namespace per guest, and a state directory per
    host, which it yields; all of it goes afterwards, even on failure."""
    need_root_networking()
    spaces = Namespaces()
    states = {h: state_dir(f"{prefix}{h}-") for h in hosts}
    (a, _), (b, _) = hosts.items()
    try:
        for name in [*hosts, *guests]:
            spaces.add(name)
        sh("ip", "link", "add", f"{a}-u", "type", "veth", "peer", "name", f"{b}-u")
        for h, addr in hosts.items():
            sh("ip", "link", "set", f"{h}-u", "netns", h)
            ns(h, "ip", "addr", "add", f"{addr}/24", "dev", f"{h}-u")
            ns(h, "ip", "link", "set", f"{h}-u", "up")
        yield states
    finally:
        spaces.cleanup()
        sh("ip", "link", "del", f"{a}-u", check=False)  # when it never reached its namespace
        for d in states.values():
            shutil.rmtree(d, ignore_errors=True)


RUNNER = """
import sys
from pathlib import Path
from kumo.v1 import node_agent_pb2 as pb
from noded.network import NetworkStep
import json
desired = pb.NodeDesiredState.FromString(Path(sys.argv[3]).read_bytes())
dns = tuple(d for d in sys.argv[4].split(",") if d)
NetworkStep(Path(sys.argv[1]), sys.argv[2], dns, json.loads(sys.argv[5]))(desired)
"""


def desired_subnet(sid: str, cidr: str, **kw: Any) -> pb.DesiredSubnet:
    """A subnet of the desired state, its gateway the first address of `cidr`."""
    net = ipaddress.ip_network(cidr)
    return pb.DesiredSubnet(
        id=sid, cidr=cidr, ip_version=net.version, gateway_ip=str(net.network_address + 1), **kw
    )


def runner_env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=f"{ROOT}:{ROOT / 'proto'}")


def apply_in(
    netns: str | None,
    state: Path,
    desired: pb.NodeDesiredState,
    tunnel_ip: str = "",
    dns_servers: Iterable[str] = (),
    physical_networks: dict[str, str] | None = None,
) -> None:
    """Runs the network step once in a namespace (None: this host), in a
    fresh process as a restarted noded would: all it knows is its state dir
    (`dns_servers`, its --dns-server flags, and its --physical-network mapping)."""
    blob = state / "desired.bin"
    blob.write_bytes(desired.SerializeToString())
    env = runner_env()
    physnets = json.dumps(physical_networks or {})
    cmd = [sys.executable, "-c", RUNNER, str(state), tunnel_ip, str(blob), ",".join(dns_servers), physnets]
    if netns:
        cmd = ["ip", "netns", "exec", netns, *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env, cwd=ROOT)
    assert proc.returncode == 0, f"network step failed in {netns or 'host'}: {proc.stderr[-3000:]}"


def add_guest(host_ns: str | None, guest_ns: str, tap: str, bridge: str, mac: str, mtu: int) -> None:
    """A "guest": a namespace whose eth0 is a veth whose other end (named like
    the guest's tap) is a port of the bridge, as libvirt would attach it."""
    sh("ip", "link", "add", tap, "type", "veth", "peer", "name", "eth0", "netns", guest_ns)
    if host_ns:
        sh("ip", "link", "set", tap, "netns", host_ns)
    where = ["ip", "netns", "exec", host_ns] if host_ns else []
    sh(*where, "ip", "link", "set", tap, "mtu", str(mtu), "master", bridge, "up")
    ns(guest_ns, "ip", "link", "set", "eth0", "address", mac, "mtu", str(mtu), "up")


def dhcp(guest_ns: str, script_dir: Path) -> str:
    """The address the guest gets by DHCP on eth0 (busybox udhcpc), or ""."""
    return dhcp_lease(guest_ns, script_dir).get("LEASE", "")


def dhcp_lease(guest_ns: str, script_dir: Path) -> dict[str, str]:
    """What the guest's DHCP lease on eth0 says (busybox udhcpc): LEASE (the
    address), ROUTER, DNS, MTU, HOST, DOMAIN; {} without a lease."""
    script = script_dir / "udhcpc.sh"
    script.write_text(UDHCPC_SCRIPT)
    script.chmod(0o755)
    proc = ns(
        guest_ns,
        "busybox",
        "udhcpc",
        "-i",
        "eth0",
        "-n",
        "-q",
        "-f",
        "-t",
        "5",
        "-T",
        "1",
        "-s",
        str(script),
        check=False,
        timeout=30,
    )
    for line in proc.stdout.splitlines():
        if line.startswith("LEASE "):
            keys = ("LEASE", "ROUTER", "DNS", "MTU", "HOST", "DOMAIN")
            out: dict[str, str] = {}
            for key, value in zip(
                keys, re.split(r" ?\b(?:ROUTER|DNS|MTU|HOST|DOMAIN) ", line[6:]), strict=False
            ):
                out[key] = value.strip()
            return out
    return {}


def ping(netns: str | None, addr: str, count: int = 1) -> bool:
    where = ["ip", "netns", "exec", netns] if netns else []
    return sh(*where, "ping", "-c", str(count), "-W", "1", addr, check=False).returncode == 0


def lookup(guest_ns: str, name: str, server: str) -> list[str]:
    """The addresses busybox nslookup in the guest gets for `name` from
    `server`; [] when it gets none (NXDOMAIN, refused, no answer in time)."""
    proc = ns(guest_ns, "timeout", "8", "busybox", "nslookup", name, server, check=False, timeout=20)
    answer = proc.stdout.split("Name:", 1)
    return re.findall(r"Address:\s*(\S+)", answer[1]) if len(answer) > 1 else []


def lan_resolver(netns: str, address: str, files: Path) -> Path:
    """A test resolver in `netns` on `address` (dnsmasq, reading no file of
    the host's): lan.test is 192.0.2.10, nothing else resolves. It logs every
    query to the file it returns; the namespace's cleanup ends it."""
    log = files / "lan-resolver.log"
    ns(
        netns,
        "dnsmasq",
        "--conf-file=/dev/null",
        "--no-resolv",
        "--no-hosts",
        "--address=/lan.test/192.0.2.10",
        f"--listen-address={address}",
        "--bind-interfaces",
        f"--pid-file={files / 'lan-resolver.pid'}",
        "--log-queries",
        f"--log-facility={log}",
    )
    return log
