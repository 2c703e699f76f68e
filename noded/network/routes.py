"""Policy routing out of an external network: the LAN's gateway is not the
host's. Traffic a router's subnets (on its SNAT node) or a floating IP's port
send out is looked up in a table of this daemon's for the external network
(`default via <its gateway> dev <its bridge>`, and its subnets on the bridge),
chosen by `ip rule ... iif <tenant bridge>`; the host's own traffic (iif lo)
and its main table are never touched. Level-triggered: each pass reads the
rules and routes of the tables it owns and changes the difference."""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass

from noded.network.cmd import run, run_json

# Before the main table (32766); a floating IP's port (from its address)
# before its network as a whole (a router's subnets): the kernel counts two
# rules of one priority, table and device as one, whatever their sources.
PRIORITY = 1000
FIRST_TABLE, TABLES = 10000, 20000


def table_id(owner: str, network_id: str) -> int:
    """A table number for this daemon's external network (stable across passes)."""
    return FIRST_TABLE + int(hashlib.sha256(f"{owner} {network_id}".encode()).hexdigest()[:8], 16) % TABLES


@dataclass(frozen=True)
class Table:
    id: int
    routes: frozenset[tuple[str, str, str]]  # (destination, gateway or "", device)
    rules: frozenset[tuple[str, str]]  # (iif, source or "all")
    family: int = 4  # IPv6 tables (NAT66 egress) share the number, in the other family


def _ip(family: int) -> list[str]:
    return ["ip", "-6"] if family == 6 else ["ip"]


def _rules(table: int, family: int = 4) -> set[tuple[str, str]]:
    out = set()
    for r in run_json([*_ip(family), "-j", "rule", "show"]) or []:
        if str(r.get("table")) == str(table):
            src = r.get("src", "all")
            if src != "all":
                # `ip -j` leaves srclen out for a host address (/32, /128).
                src = str(ipaddress.ip_interface(f"{src}/{r.get('srclen', 128 if ':' in src else 32)}"))
            out.add((r.get("iif", ""), src))
    return out


def _routes(table: int, family: int = 4) -> set[tuple[str, str, str]]:
    return {
        (r.get("dst", ""), r.get("gateway", ""), r.get("dev", ""))
        for r in run_json([*_ip(family), "-j", "route", "show", "table", str(table)]) or []
    }


def _rule_args(table: int, iif: str, src: str) -> list[str]:
    args = ["priority", str(PRIORITY + (src == "all")), "iif", iif]
    if src != "all":
        args += ["from", src]
    return [*args, "table", str(table)]


def _batch(family: int, lines: list[str], check: bool = True) -> None:
    """iproute2 commands in one process (`ip -batch`): a thousand floating
    IPs' rules are one call, not a thousand."""
    if lines:
        force = [] if check else ["-force"]
        run([*_ip(family), *force, "-batch", "-"], stdin="\n".join(lines) + "\n", check=check)


def ensure(table: Table) -> None:
    have = _rules(table.id, table.family)
    lines = [" ".join(["rule", "del", *_rule_args(table.id, i, s)]) for i, s in sorted(have - table.rules)]
    lines += [" ".join(["rule", "add", *_rule_args(table.id, i, s)]) for i, s in sorted(table.rules - have)]
    if _routes(table.id, table.family) != set(table.routes):
        run([*_ip(table.family), "route", "flush", "table", str(table.id)], check=False)
        # Connected routes first: the gateway must be reachable on the bridge.
        for dst, gw, dev in sorted(table.routes, key=lambda r: r[1] != ""):
            via = ["via", gw] if gw else ["scope", "link"] if table.family == 4 else []
            lines.append(" ".join(["route", "add", dst, *via, "dev", dev, "table", str(table.id)]))
    _batch(table.family, lines)


def remove(table: int, family: int | None = None) -> None:
    """The table's rules and routes (in both families unless one is named)."""
    for fam in (4, 6) if family is None else (family,):
        _batch(
            fam,
            [" ".join(["rule", "del", *_rule_args(table, i, s)]) for i, s in sorted(_rules(table, fam))],
            check=False,
        )
        if _routes(table, fam):
            run([*_ip(fam), "route", "flush", "table", str(table)], check=False)
