"""A "LAN" of test hosts on this one machine: a bridge in the machine's own
network namespace (where the controller listens, on the bridge's address)
and, per host, a network namespace joined to it by a veth pair (`lan0`
inside, with the host's LAN address). Each host's libvirtd and kumo-noded
run inside its namespace (bench/libvirt_hosts.py, `netns`), so each has its
own bridges, dnsmasq, nftables and VXLAN devices, and the tenant overlay
runs between the hosts' LAN addresses as between real machines.

Names carry a `tag` so that parallel runs (several worktrees, one kernel)
never touch each other's namespaces or bridge."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
from dataclasses import dataclass, field

from bench.procs import ROOT

PREFIX = 24


def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(args), capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {proc.stderr.strip()}")
    return proc


def worktree_tag(prefix: str) -> str:
    """`prefix` (at most 3 characters) and 3 hex digits of this checkout's
    path: parallel runs from several checkouts get their own names."""
    return prefix + hashlib.sha256(str(ROOT).encode()).hexdigest()[:3]


@dataclass
class HostLan:
    """`tag` (at most 6 characters) names everything; `subnet` is the first
    three octets of the LAN's /24 (the bridge is .1, hosts .11, .12, ...),
    by default one of 198.18.20-219 picked by the tag (two LANs on one
    machine must not share a subnet: both are routes of its namespace)."""

    tag: str
    subnet: str = ""
    hosts: dict[str, str] = field(default_factory=dict)  # namespace -> LAN address

    def __post_init__(self) -> None:
        if not 1 <= len(self.tag) <= 6 or not self.tag.isalnum():
            raise ValueError("tag: 1 to 6 letters or digits (interface names have at most 15 characters)")
        if not self.subnet:
            self.subnet = f"198.18.{20 + int(hashlib.sha256(self.tag.encode()).hexdigest(), 16) % 200}"

    @property
    def bridge(self) -> str:
        return f"kln-{self.tag}"

    @property
    def address(self) -> str:
        """The machine's own address on the LAN (the controller's node port listens on it)."""
        return f"{self.subnet}.1"

    def up(self) -> HostLan:
        self.down()
        _run("ip", "link", "add", self.bridge, "type", "bridge", "stp_state", "0", "forward_delay", "0")
        _run("ip", "addr", "add", f"{self.address}/{PREFIX}", "dev", self.bridge)
        _run("ip", "link", "set", self.bridge, "up")
        return self

    def add_host(self, name: str, services: tuple[str, ...] = ()) -> str:
        """A host namespace `<tag>-<name>` on the LAN; returns its name.
        `services`: addresses of this machine's namespace (not on the LAN,
        e.g. the test Ceph cluster's) the host reaches through the bridge."""
        netns = f"{self.tag}-{name}"
        addr = f"{self.subnet}.{11 + len(self.hosts)}"
        outside = f"kl{self.tag}{len(self.hosts)}"
        _run("ip", "netns", "del", netns, check=False)
        _run("ip", "netns", "add", netns)
        _run("ip", "link", "add", outside, "type", "veth", "peer", "name", "lan0", "netns", netns)
        _run("ip", "link", "set", outside, "master", self.bridge, "up")
        inside = ["ip", "netns", "exec", netns, "ip"]
        _run(*inside, "link", "set", "lo", "up")
        _run(*inside, "addr", "add", f"{addr}/{PREFIX}", "dev", "lan0")
        _run(*inside, "link", "set", "lan0", "up")
        for service in services:
            _run(*inside, "route", "add", f"{service}/32", "via", self.address, "dev", "lan0")
        self.hosts[netns] = addr
        return netns

    def down(self) -> None:
        """Every host namespace (the processes left in it killed first) and the bridge."""
        for netns in list(self.hosts):
            for pid in _run("ip", "netns", "pids", netns, check=False).stdout.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            _run("ip", "netns", "del", netns, check=False)  # its veth end goes with it
        self.hosts.clear()
        _run("ip", "link", "del", self.bridge, check=False)

    @staticmethod
    def exec_prefix(netns: str) -> list[str]:
        return ["ip", "netns", "exec", netns]
