"""DHCP and DNS for a network: one dnsmasq per bridge that answers only the
ports it is told about (a static lease per port: MAC -> fixed IP and host
name), sends router advertisements for the IPv6 SLAAC subnets (the bridge is
their router; each guest makes its EUI-64 address, which is its port's fixed
IP), and is the network's resolver on its bridge (the gateway addresses):
it answers the names of the network's ports (`<name>.<network domain>` and
`<name>`) itself and forwards other queries to the upstreams it is given
(resolvers.py). Nothing else: no DHCPv6, no leases for unknown MACs, no
config, hosts or resolv file of the host's.

Files, under <state dir>/network/dhcp/:
    <net>.pid    dnsmasq's pid (it runs as a daemon, so a noded restart adopts it)
    <net>.hosts  the static leases, re-read on SIGHUP when ports change
    <net>.names  the network's names (hosts-file format), re-read on SIGHUP
    <net>.args   the command line it was started with: a change restarts it
    <net>.log    its log (DHCP requests and answers)
"""

from __future__ import annotations

import ipaddress
import os
import signal
import time
from pathlib import Path

from kumo.v1 import node_agent_pb2 as pb
from noded.network.cmd import NetworkError, run

LEASE_TIME = "1h"
# Valid and preferred lifetime of a SLAAC prefix in router advertisements
# (sent every few minutes; dnsmasq never goes below three RA intervals).
PREFIX_LIFETIME = "1d"
# IPv6's minimum link MTU: dnsmasq refuses to advertise less, and the kernel
# turns IPv6 off on a device below it.
IPV6_MIN_MTU = 1280


class Dhcp:
    def __init__(self, directory: Path) -> None:
        self.dir = directory

    def _files(self, short: str) -> tuple[Path, Path, Path, Path, Path]:
        d = self.dir
        return (
            d / f"{short}.pid",
            d / f"{short}.hosts",
            d / f"{short}.args",
            d / f"{short}.log",
            d / f"{short}.names",
        )

    def pid(self, short: str) -> int | None:
        """dnsmasq's pid when it runs (checked against its command line, so a
        reused pid is never taken for ours)."""
        pidfile = self._files(short)[0]
        try:
            pid = int(pidfile.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            return None
        if f"--pid-file={pidfile}".encode() not in cmdline:
            return None
        return pid

    def ensure(
        self,
        short: str,
        bridge: str,
        net: pb.DesiredNetwork,
        ports: list[pb.DesiredPort],
        mtu: int,
        restart: bool = False,
        upstreams: list[str] | None = None,
        dns: bool = True,
    ) -> bool:
        """Runs dnsmasq for the network's IPv4 subnets that have a gateway (the
        bridge needs an address in a subnet to serve it) and its IPv6 SLAAC
        subnets (router advertisements), forwarding to `upstreams` the queries
        of guests whose subnet names no DNS servers; `dns` False: no resolver
        (another network here has its gateway address). False: nothing to serve."""
        pidfile, hosts, argsfile, logfile, names = self._files(short)
        args = self._args(bridge, net, mtu, pidfile, hosts, logfile, names, upstreams or [], dns)
        if args is None:
            self.stop(short)
            return False
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o755)  # dnsmasq drops to nobody and re-reads the hosts file
        hosts_changed = _write(hosts, lease_lines(net, ports))
        hosts_changed = _write(names, name_lines(net)) or hosts_changed
        joined = "\0".join(args)
        pid = self.pid(short)
        if pid is not None and not restart and argsfile.exists() and argsfile.read_text() == joined:
            if hosts_changed:
                os.kill(pid, signal.SIGHUP)
            return True
        self._kill(short)
        argsfile.write_text(joined)
        run(args)
        deadline = time.monotonic() + 5
        while self.pid(short) is None:
            if time.monotonic() > deadline:
                raise NetworkError(f"dnsmasq for {bridge} did not start; see {logfile}")
            time.sleep(0.05)
        return True

    def _args(
        self,
        bridge: str,
        net: pb.DesiredNetwork,
        mtu: int,
        pidfile: Path,
        hosts: Path,
        logfile: Path,
        names: Path,
        upstreams: list[str],
        dns: bool = True,
    ) -> list[str] | None:
        args = [
            "dnsmasq",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            f"--addn-hosts={names}",
            "--domain-needed",  # a bare name is never forwarded
            "--bogus-priv",  # nor a reverse query of a private range
            "--bind-interfaces",
            f"--interface={bridge}",
            "--except-interface=lo",
            f"--pid-file={pidfile}",
            f"--dhcp-hostsfile={hosts}",
            "--dhcp-ignore=tag:!known",  # no lease for a MAC that is not a port
            "--leasefile-ro",  # the leases are static: nothing to remember
            "--dhcp-authoritative",
            "--log-dhcp",
            f"--log-facility={logfile}",
            f"--dhcp-option=option:mtu,{mtu}",
        ]
        if not dns:
            args.append("--port=0")
        elif net.dns_domain:
            # The network's own domain is answered here only (NXDOMAIN
            # rather than forwarded), and is the guests' search domain.
            args += [f"--local=/{net.dns_domain}/", f"--domain={net.dns_domain}"]
        served = slaac = forward = 0
        for i, s in enumerate(net.subnets):
            cidr = ipaddress.ip_network(s.cidr, strict=False)
            if not s.gateway_ip:
                continue
            tag = f"s{i}"
            if cidr.version == 4:
                served += 1
                args.append(
                    f"--dhcp-range=set:{tag},{cidr.network_address},static,{cidr.netmask},{LEASE_TIME}"
                )
                args.append(f"--dhcp-option=tag:{tag},option:router,{s.gateway_ip}")
                # The subnet's own servers, else its gateway: this dnsmasq.
                own = [d for d in s.dns_servers if ":" not in d]
                servers = own if s.dns_servers or not dns else [s.gateway_ip]
                forward += dns and not s.dns_servers
                # Empty (only IPv6 servers named): say no DNS server rather
                # than let dnsmasq offer itself.
                args.append(f"--dhcp-option=tag:{tag},option:dns-server" + "".join(f",{d}" for d in servers))
            elif s.ipv6_slaac and cidr.prefixlen == 64:
                slaac += 1
                # ra-only: router advertisements with the prefix (autonomous,
                # on-link) and no DHCPv6. The prefix is the bridge's gateway
                # address's; the router is the bridge's link-local address.
                args.append(f"--dhcp-range=set:{tag},{cidr.network_address},ra-only,64,{PREFIX_LIFETIME}")
                # RDNSS: the subnet's own servers, else its gateway (this
                # dnsmasq); never dnsmasq's link-local address, which the
                # rules do not open.
                own6 = [d for d in s.dns_servers if ":" in d]
                dns6 = own6 if s.dns_servers or not dns else [s.gateway_ip]
                forward += dns and not s.dns_servers
                # Empty (only IPv4 servers named): none, rather than
                # dnsmasq's own link-local address.
                args.append(f"--dhcp-option=tag:{tag},option6:dns-server" + "".join(f",[{d}]" for d in dns6))
        if forward:
            args += [f"--server={u}" for u in upstreams]
        if slaac:
            args.append("--enable-ra")
            if mtu >= IPV6_MIN_MTU:  # the MTU option; 0: dnsmasq's own RA interval
                args.append(f"--ra-param={bridge},mtu:{mtu},0")
        return args if served or slaac else None

    def stop(self, short: str) -> None:
        """Stops the network's dnsmasq and removes its files."""
        self._kill(short)
        for f in self._files(short):
            f.unlink(missing_ok=True)

    def _kill(self, short: str) -> None:
        pid = self.pid(short)
        if pid is not None:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + 5
            while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                time.sleep(0.02)

    def running(self) -> list[str]:
        """The networks (short ids) with a dnsmasq state file here."""
        if not self.dir.exists():
            return []
        return sorted({p.stem for p in self.dir.glob("*.args")} | {p.stem for p in self.dir.glob("*.pid")})


def lease_lines(net: pb.DesiredNetwork, ports: list[pb.DesiredPort]) -> str:
    """The dhcp-hostsfile: `MAC,IPv4[,name]` per port, the name its host name."""
    lines = []
    v4 = {s.id for s in net.subnets if s.ip_version == 4 or ":" not in s.cidr}
    for p in sorted(ports, key=lambda p: p.mac_address):
        for ip in p.fixed_ips:
            if ip.subnet_id in v4:
                name = f",{p.dns_name}" if p.dns_name else ""
                lines.append(f"{p.mac_address.lower()},{ip.ip_address}{name}\n")
                break
    return "".join(lines)


def name_lines(net: pb.DesiredNetwork) -> str:
    """The addn-hosts file: `<address> <name>.<domain> <name>` per address of
    every port of the network (this node's and the peers')."""
    lines = []
    for r in sorted(net.dns_records, key=lambda r: r.hostname):
        fqdn = f"{r.hostname}.{net.dns_domain}" if net.dns_domain else r.hostname
        names = f"{fqdn} {r.hostname}" if fqdn != r.hostname else fqdn
        lines += [f"{ip} {names}\n" for ip in r.ip_addresses]
    return "".join(lines)


def _write(path: Path, text: str) -> bool:
    """Writes the file (readable by dnsmasq's user) if its text changed."""
    if path.exists() and path.read_text() == text:
        return False
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return True
