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


def ensure(table: Table) -> None:
    ip = _ip(table.family)
    have = _rules(table.id, table.family)
    for iif, src in sorted(have - table.rules):
        run([*ip, "rule", "del", *_rule_args(table.id, iif, src)])
    for iif, src in sorted(table.rules - have):
        run([*ip, "rule", "add", *_rule_args(table.id, iif, src)])
    if _routes(table.id, table.family) != set(table.routes):
        run([*ip, "route", "flush", "table", str(table.id)], check=False)
        # Connected routes first: the gateway must be reachable on the bridge.
        for dst, gw, dev in sorted(table.routes, key=lambda r: r[1] != ""):
            via = ["via", gw] if gw else ["scope", "link"] if table.family == 4 else []
            run([*ip, "route", "add", dst, *via, "dev", dev, "table", str(table.id)])


def remove(table: int, family: int | None = None) -> None:
    """The table's rules and routes (in both families unless one is named)."""
    for fam in (4, 6) if family is None else (family,):
        ip = _ip(fam)
        for iif, src in sorted(_rules(table, fam)):
            run([*ip, "rule", "del", *_rule_args(table, iif, src)], check=False)
        if _routes(table, fam):
            run([*ip, "route", "flush", "table", str(table)], check=False)
