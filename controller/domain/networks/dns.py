"""Guest names inside a network, as Neutron's internal DNS gives them: each
bound port is named after its instance (lower-cased, made a DNS label) in
the network's domain, `<name>.<network>.<dns_domain>`. Pure functions: the
projection feeds them rows and puts the result in the node's desired state."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

LABEL_MAX = 63


def dns_label(name: str, fallback: str = "") -> str:
    """`name` as one DNS label: lower case, letters, digits and '-' (any
    other run of characters becomes '-'), no '-' at either end, at most 63
    characters. `fallback` when nothing is left."""
    label = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:LABEL_MAX].rstrip("-")
    return label or fallback


def network_domain(network_name: str, network_id: str, dns_domain: str) -> str:
    """The network's domain: its name as a label under the cloud's domain
    (`app.kumo`); a name with nothing DNS-safe in it uses the id's first
    characters."""
    label = dns_label(network_name, "net-" + network_id.replace("-", "")[:10])
    return f"{label}.{dns_domain}" if dns_domain else label


def address_name(ip: str) -> str:
    """The name of a port whose instance has no usable one (Neutron's
    `host-10-0-0-5`)."""
    return "host-" + re.sub(r"[.:]+", "-", str(ipaddress.ip_address(ip))).strip("-")


@dataclass(frozen=True)
class NamedPort:
    """A bound port of a network, in the order names are handed out (the
    oldest port first: a name, once held, stays with its port)."""

    port_id: str
    instance_name: str
    ips: tuple[str, ...]


def assign_names(ports: Iterable[NamedPort]) -> dict[str, str]:
    """port id -> its name in the network, unique there. The first port to
    want a name gets it; a later port of another instance with the same name
    gets `<name>-<first 6 hex digits of its port id>`, as does a second port of one
    instance on the network."""
    out: dict[str, str] = {}
    taken: set[str] = set()
    for p in ports:
        first_ip = p.ips[0] if p.ips else ""
        name = dns_label(p.instance_name) or (address_name(first_ip) if first_ip else "")
        if not name:
            name = "port-" + p.port_id.replace("-", "")[:6]
        if name in taken:
            suffix = "-" + p.port_id.replace("-", "")[:6]
            name = name[: LABEL_MAX - len(suffix)].rstrip("-") + suffix
        taken.add(name)
        out[p.port_id] = name
    return out
