"""Where a network's resolver (the node's dnsmasq on the gateway address)
forwards the queries it cannot answer itself: the servers `--dns-server`
names, else the host's own resolvers from /etc/resolv.conf.

A host whose resolv.conf lists only loopback servers usually runs a local
stub (systemd-resolved's 127.0.0.53, a local dnsmasq or unbound): when
systemd-resolved's list of real upstreams exists, those are used (as Docker
does); otherwise the loopback servers are kept, since dnsmasq runs on the
host and reaches them. Never forwarded to: this node's own gateway
addresses (dnsmasq itself) and link-local servers (no zone to reach them by)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from pathlib import Path

RESOLV_CONF = Path("/etc/resolv.conf")
# systemd-resolved's view of the upstream servers, behind its 127.0.0.53 stub.
RESOLVED_UPSTREAMS = Path("/run/systemd/resolve/resolv.conf")


def nameservers(text: str) -> list[str]:
    """The `nameserver` addresses of a resolv.conf, in order, valid ones only."""
    out = []
    for line in text.splitlines():
        parts = line.split("#", 1)[0].split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            try:
                out.append(str(ipaddress.ip_address(parts[1])))
            except ValueError:
                continue
    return out


def _read(path: Path) -> list[str]:
    try:
        return nameservers(path.read_text())
    except OSError:
        return []


def _loopback(addr: str) -> bool:
    return ipaddress.ip_address(addr).is_loopback


def host_upstreams(resolv_conf: Path = RESOLV_CONF, resolved: Path = RESOLVED_UPSTREAMS) -> list[str]:
    """The host's resolvers, a loopback stub replaced by its upstreams when known."""
    servers = _read(resolv_conf)
    if servers and all(_loopback(s) for s in servers):
        real = [s for s in _read(resolved) if not _loopback(s)]
        if real:
            return real
    return servers


def upstreams(configured: Iterable[str], own: Iterable[str], host: list[str] | None = None) -> list[str]:
    """The servers to forward to: `configured`, else the host's (`host`, or
    read now), less this node's own addresses `own` and link-local ones;
    each once, in order."""
    chosen = list(configured) or (host_upstreams() if host is None else host)
    mine = {str(ipaddress.ip_address(a)) for a in own}
    out: list[str] = []
    for s in chosen:
        addr = ipaddress.ip_address(s)
        if str(addr) in mine or addr.is_link_local or addr.is_unspecified or str(addr) in out:
            continue
        out.append(str(addr))
    return out
