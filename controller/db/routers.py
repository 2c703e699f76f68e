"""Queries for routers, their interfaces and floating IPs.

The unique keys decide races: router_interface is keyed by the subnet (a
subnet on at most one router), floating_ip.port_id is unique (a port has at
most one floating IP), and every external address is an ip_allocation row
of a port, as for NICs."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import peewee

from controller.db.database import cached, cached_rows, db, is_sqlite, padded
from controller.db.models import (
    FloatingIp,
    Instance,
    IpAllocation,
    Port,
    Router,
    RouterInterface,
    RouterSnat,
    Subnet,
)
from controller.db.paging import paginate
from controller.errors import AlreadyExists

# Routers


def insert_router(fields: dict[str, Any]) -> Router:
    try:
        with db.atomic():
            return Router.create(**fields)
    except peewee.IntegrityError:
        raise AlreadyExists(
            f"a router named {fields['name']!r} already exists", reason="ROUTER_EXISTS"
        ) from None


def get_router(router_id: str) -> Router | None:
    return Router.get_or_none(Router.id == router_id)


def lock_router(router_id: str) -> Router | None:
    """The router, locked for the transaction on PostgreSQL (SQLite's one
    writer already serialises): an interface added while it is deleted waits."""
    query = Router.select().where(Router.id == router_id)
    if not is_sqlite():
        query = query.for_update()
    return query.get_or_none()


def list_routers(
    page_size: int, page_token: str, name: str, project_id: str | None
) -> tuple[list[Router], str]:
    query = Router.select()
    if project_id is not None:
        query = query.where(Router.project == project_id)
    if name:
        query = query.where(Router.name == name)
    return paginate(query, (Router.name, Router.id), page_size, page_token)


def update_router(router_id: str, fields: dict[str, Any], now: float) -> None:
    try:
        with db.atomic():
            Router.update(**fields, update_time=now).where(Router.id == router_id).execute()
    except peewee.IntegrityError:
        raise AlreadyExists(
            f"a router named {fields.get('name')!r} already exists", reason="ROUTER_EXISTS"
        ) from None


def delete_router(router_id: str) -> int:
    return Router.delete().where(Router.id == router_id).execute()


def count_routers(project_id: str) -> int:
    return Router.select().where(Router.project == project_id).count()


# Interfaces


def add_interface(router_id: str, subnet_id: str) -> bool:
    """False when the subnet is on a router already (the key decides)."""
    try:
        with db.atomic():
            RouterInterface.insert(router=router_id, subnet=subnet_id).execute()
        return True
    except peewee.IntegrityError:
        return False


def interface_router(subnet_id: str) -> str:
    row = RouterInterface.get_or_none(RouterInterface.subnet == subnet_id)
    return row.router_id if row else ""


def remove_interface(router_id: str, subnet_id: str) -> int:
    return (
        RouterInterface.delete()
        .where((RouterInterface.router == router_id) & (RouterInterface.subnet == subnet_id))
        .execute()
    )


def interfaces_of(router_ids: Iterable[str]) -> dict[str, list[Subnet]]:
    """router id -> its interface subnets, in creation order."""
    ids = list(set(router_ids))
    out: dict[str, list[Subnet]] = defaultdict(list)
    if not ids:
        return out
    query = (
        Subnet.select(Subnet, RouterInterface.router)
        .join(RouterInterface, on=(RouterInterface.subnet == Subnet.id))
        .where(RouterInterface.router.in_(ids))
        .order_by(Subnet.create_time, Subnet.id)
        .objects()
    )
    for s in query:
        out[s.router].append(s)
    return out


def count_interfaces(router_id: str) -> int:
    return RouterInterface.select().where(RouterInterface.router == router_id).count()


def routers_of_networks(network_ids: Iterable[str]) -> set[str]:
    ids = list(set(network_ids))
    if not ids:
        return set()
    ids = padded(ids)
    query = (
        RouterInterface.select(RouterInterface.router)
        .join(Subnet, on=(RouterInterface.subnet == Subnet.id))
        .where(Subnet.network.in_(ids))
        .tuples()
    )
    return {r[0] for r in cached_rows(("routers of networks", len(ids)), query, ids)}


def routers_by_id(router_ids: Iterable[str]) -> list[Router]:
    ids = list(set(router_ids))
    if not ids:
        return []
    return list(Router.select().where(Router.id.in_(ids)).order_by(Router.id))


def nodes_of_routers(router_ids: Iterable[str], skip_states: tuple[int, ...]) -> dict[str, set[str]]:
    """router id -> the nodes running guests with ports on its interface networks."""
    ids = list(set(router_ids))
    out: dict[str, set[str]] = defaultdict(set)
    if not ids:
        return out
    query = (
        RouterInterface.select(RouterInterface.router, Instance.node)
        .join(Subnet, on=(RouterInterface.subnet == Subnet.id))
        .join(Port, on=(Port.network == Subnet.network))
        .join(Instance, on=(Port.instance_id == Instance.id))
        .where(RouterInterface.router.in_(ids) & Instance.state.not_in(skip_states))
        .distinct()
        .tuples()
    )
    for router_id, node_id in query:
        out[router_id].add(node_id)
    return out


def port_address(port_id: str, version: int = 4) -> tuple[str, str]:
    """(subnet id, address) of a port's first address of the IP version, or ("", "")."""
    row = (
        IpAllocation.select(IpAllocation.subnet, IpAllocation.ip_address)
        .join(Subnet)
        .where((IpAllocation.port == port_id) & (Subnet.ip_version == version))
        .order_by(Subnet.create_time, IpAllocation.ip_address)
        .tuples()
        .first()
    )
    return (row[0], row[1]) if row else ("", "")


def port_networks(port_ids: Iterable[str]) -> dict[str, str]:
    """port id -> its network id, in one query."""
    ids = list(set(port_ids))
    if not ids:
        return {}
    return dict(Port.select(Port.id, Port.network).where(Port.id.in_(ids)).tuples())


def device_ports_on(network_id: str) -> int:
    """Router gateways and floating IPs holding addresses on the network."""
    return Port.select().where((Port.network == network_id) & (Port.device_owner != "")).count()


# Floating IPs


def insert_floating_ip(fields: dict[str, Any]) -> FloatingIp:
    return FloatingIp.create(**fields)


def get_floating_ip(fip_id: str) -> FloatingIp | None:
    return FloatingIp.get_or_none(FloatingIp.id == fip_id)


def list_floating_ips(
    page_size: int, page_token: str, project_id: str | None, network_id: str = "", port_id: str = ""
) -> tuple[list[FloatingIp], str]:
    query = FloatingIp.select()
    if project_id is not None:
        query = query.where(FloatingIp.project == project_id)
    if network_id:
        query = query.where(FloatingIp.network == network_id)
    if port_id:
        query = query.where(FloatingIp.port == port_id)
    return paginate(query, (FloatingIp.create_time, FloatingIp.id), page_size, page_token)


def associate(fip_id: str, fields: dict[str, Any], now: float, expect_port: str | None) -> bool:
    """Sets the floating IP's port only if it still has `expect_port`
    (compare-and-set); False when it changed meanwhile or the port has
    another floating IP already (the unique key)."""
    cond = FloatingIp.id == fip_id
    cond &= FloatingIp.port.is_null() if expect_port is None else (FloatingIp.port == expect_port)
    try:
        with db.atomic():
            return FloatingIp.update(**fields, update_time=now).where(cond).execute() == 1
    except peewee.IntegrityError:
        return False


def update_floating_ip(fip_id: str, fields: dict[str, Any], now: float) -> None:
    FloatingIp.update(**fields, update_time=now).where(FloatingIp.id == fip_id).execute()


def delete_floating_ip(fip_id: str) -> int:
    return FloatingIp.delete().where(FloatingIp.id == fip_id).execute()


def count_floating_ips(project_id: str) -> int:
    return FloatingIp.select().where(FloatingIp.project == project_id).count()


def floating_ips_of_ports(port_ids: Iterable[str]) -> list[FloatingIp]:
    ids = list(set(port_ids))
    if not ids:
        return []
    ids = padded(ids)
    query = FloatingIp.select().where(FloatingIp.port.in_(ids)).order_by(FloatingIp.id)
    return cached(("floating ips of ports", len(ids)), query, ids)


def floating_ips_on_networks(network_ids: list[str]) -> list[FloatingIp]:
    """The floating IPs given to ports on the networks (floating_ips_of_ports
    for every port of a batch's networks at once), by id."""
    if not network_ids:
        return []
    ids = padded(network_ids)
    holders = Port.select(Port.id).where(Port.network.in_(ids))
    query = FloatingIp.select().where(FloatingIp.port.in_(holders)).order_by(FloatingIp.id)
    return cached(("floating ips on networks", len(ids)), query, ids)


def network_routers(network_ids: list[str]) -> dict[str, set[str]]:
    """network id -> the routers with an interface on it (routers_of_networks, per network)."""
    out: dict[str, set[str]] = defaultdict(set)
    if not network_ids:
        return out
    ids = padded(network_ids)
    query = (
        RouterInterface.select(Subnet.network, RouterInterface.router)
        .join(Subnet, on=(RouterInterface.subnet == Subnet.id))
        .where(Subnet.network.in_(ids))
        .tuples()
    )
    for net_id, router_id in cached_rows(("network routers", len(ids)), query, ids):
        out[net_id].add(router_id)
    return out


def floating_ips_on_subnet_ports(subnet_id: str) -> int:
    """Floating IPs given to ports with an address on the subnet."""
    holders = IpAllocation.select(IpAllocation.port).where(IpAllocation.subnet == subnet_id)
    return FloatingIp.select().where(FloatingIp.port.in_(holders)).count()


def floating_ips_of_router(router_id: str) -> int:
    return FloatingIp.select().where(FloatingIp.router == router_id).count()


def release_port_floating_ips(port_ids: Iterable[str], now: float) -> list[FloatingIp]:
    """The ports go: their floating IPs stay, unassociated."""
    rows = floating_ips_of_ports(port_ids)
    if rows:
        FloatingIp.update(port=None, fixed_ip_address="", router=None, update_time=now).where(
            FloatingIp.id.in_([r.id for r in rows])
        ).execute()
    return rows


# Distributed SNAT: a router's address per node


def snat_ports(router_ids: Iterable[str]) -> dict[str, dict[str, str]]:
    """router id -> {node id: the port holding its SNAT address there}."""
    ids = list(set(router_ids))
    out: dict[str, dict[str, str]] = defaultdict(dict)
    if not ids:
        return out
    query = RouterSnat.select(RouterSnat.router, RouterSnat.node_id, RouterSnat.port)
    for router_id, node_id, port_id in query.where(RouterSnat.router.in_(ids)).tuples():
        out[router_id][node_id] = port_id
    return out


def insert_snat(router_id: str, node_id: str, port_id: str) -> bool:
    """False when the node has one for the router already (the key decides)."""
    try:
        with db.atomic():
            RouterSnat.insert(router=router_id, node_id=node_id, port=port_id).execute()
        return True
    except peewee.IntegrityError:
        return False


def delete_snat(router_id: str, node_id: str) -> int:
    return (
        RouterSnat.delete()
        .where((RouterSnat.router == router_id) & (RouterSnat.node_id == node_id))
        .execute()
    )
