"""Queries for networks, subnets, ports, IP allocations and security groups.

Every insert that takes something unique (a name, a VNI, a MAC, an address)
runs in a savepoint, so a clash fails only that statement and the caller's
transaction can go on and try the next candidate (PostgreSQL aborts the whole
transaction on a failed statement otherwise). The hot ones of a create (a
port's MAC, an address) say ON CONFLICT DO NOTHING instead: the same outcome
in one statement, not three."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import peewee

from controller.db.database import (
    cached,
    cached_first,
    cached_insert,
    cached_insert_new,
    cached_rows,
    db,
    is_sqlite,
    padded,
)
from controller.db.live_migrations import UNFINISHED, incoming_instances
from controller.db.models import (
    Instance,
    IpAllocation,
    LiveMigration,
    Network,
    Node,
    Port,
    PortSecurityGroup,
    SecurityGroup,
    SecurityGroupRule,
    Subnet,
)
from controller.db.nodes import bump_desired_revisions
from controller.db.paging import paginate
from controller.errors import AlreadyExists

# Networks


def insert_network(fields: dict[str, Any]) -> Network | None:
    """The new network, or None when its VNI was taken meanwhile (pick another).
    A taken name is ALREADY_EXISTS."""
    try:
        with db.atomic():
            return Network.create(**fields)
    except peewee.IntegrityError:
        if Network.get_or_none((Network.project == fields["project"]) & (Network.name == fields["name"])):
            raise AlreadyExists(
                f"a network named {fields['name']!r} already exists", reason="NETWORK_EXISTS"
            ) from None
        return None


def get_network(network_id: str) -> Network | None:
    return cached_first("network", Network.select().where(Network.id == network_id), [network_id])


def find_networks(name: str, project_id: str | None) -> list[Network]:
    """By name: the project's own first, then shared ones (all, for admins)."""
    query = Network.select().where(Network.name == name)
    params: list[Any] = [name]
    if project_id is not None:
        query = query.where((Network.project == project_id) | Network.shared | Network.external)
        params.append(project_id)
    rows = cached(("networks by name", project_id is None), query.limit(10), [*params, 10])
    rows.sort(key=lambda r: (r.project_id != project_id, r.id))
    return rows


def list_networks(
    page_size: int, page_token: str, name: str, project_id: str | None
) -> tuple[list[Network], str]:
    """project_id None: every network (admins); else its own, shared and external ones."""
    query = Network.select()
    if project_id is not None:
        query = query.where((Network.project == project_id) | Network.shared | Network.external)
    if name:
        query = query.where(Network.name == name)
    return paginate(query, (Network.name, Network.id), page_size, page_token)


def update_network(network_id: str, fields: dict[str, Any], now: float) -> None:
    try:
        with db.atomic():
            Network.update(**fields, update_time=now).where(Network.id == network_id).execute()
    except peewee.IntegrityError:
        raise AlreadyExists(
            f"a network named {fields.get('name')!r} already exists", reason="NETWORK_EXISTS"
        ) from None


def delete_network(network_id: str) -> int:
    """Deletes its ports (with their addresses), subnets and the network;
    returns 1, or 0 when a racing delete already removed it."""
    ports = Port.select(Port.id).where(Port.network == network_id)
    IpAllocation.delete().where(IpAllocation.port.in_(ports)).execute()
    PortSecurityGroup.delete().where(PortSecurityGroup.port.in_(ports)).execute()
    Port.delete().where(Port.network == network_id).execute()
    Subnet.delete().where(Subnet.network == network_id).execute()
    return int(Network.delete().where(Network.id == network_id).execute())


def count_networks(project_id: str) -> int:
    return Network.select().where(Network.project == project_id).count()


def lock_network(network_id: str) -> None:
    """On PostgreSQL: serialise changes to one network's subnets (overlap checks)."""
    if not isinstance(db.obj, peewee.SqliteDatabase):
        list(Network.select(Network.id).where(Network.id == network_id).for_update())


# Subnets


def insert_subnet(fields: dict[str, Any]) -> Subnet:
    try:
        with db.atomic():
            return Subnet.create(**fields)
    except peewee.IntegrityError:
        raise AlreadyExists(
            f"a subnet named {fields['name']!r} already exists on this network", reason="SUBNET_EXISTS"
        ) from None


def get_subnet(subnet_id: str) -> Subnet | None:
    """With its network joined in (`row.network` costs no query)."""
    return Subnet.select(Subnet, Network).join(Network).where(Subnet.id == subnet_id).get_or_none()


def subnets_of(network_ids: Iterable[str]) -> list[Subnet]:
    ids = list(set(network_ids))
    if not ids:
        return []
    query = Subnet.select().where(Subnet.network.in_(ids)).order_by(Subnet.create_time, Subnet.id)
    return cached(("subnets of", len(ids)), query, ids)


def list_subnets(
    page_size: int, page_token: str, name: str, network_id: str, project_id: str | None
) -> tuple[list[Subnet], str]:
    """project_id None: every subnet; else those of its own and shared networks.
    Each row comes with its network joined in (`row.network` costs no query)."""
    query = Subnet.select(Subnet, Network).join(Network)
    if project_id is not None:
        visible = Network.select(Network.id).where(
            (Network.project == project_id) | Network.shared | Network.external
        )
        query = query.where(Subnet.network.in_(visible))
    if network_id:
        query = query.where(Subnet.network == network_id)
    if name:
        query = query.where(Subnet.name == name)
    return paginate(query, (Subnet.name, Subnet.id), page_size, page_token)


def update_subnet(subnet_id: str, fields: dict[str, Any], now: float) -> None:
    try:
        with db.atomic():
            Subnet.update(**fields, update_time=now).where(Subnet.id == subnet_id).execute()
    except peewee.IntegrityError:
        raise AlreadyExists(
            f"a subnet named {fields.get('name')!r} already exists on this network", reason="SUBNET_EXISTS"
        ) from None


def delete_subnet(subnet_id: str) -> int:
    return Subnet.delete().where(Subnet.id == subnet_id).execute()


def count_allocations(subnet_id: str) -> int:
    return IpAllocation.select().where(IpAllocation.subnet == subnet_id).count()


# Ports and addresses


def insert_port(fields: dict[str, Any]) -> Port | None:
    """The new port, or None when its MAC was taken meanwhile (pick another)."""
    return cached_insert_new(Port, **fields)  # type: ignore[no-any-return]


def allocated(subnet_id: str) -> set[str]:
    return {
        r[0]
        for r in IpAllocation.select(IpAllocation.ip_address).where(IpAllocation.subnet == subnet_id).tuples()
    }


def is_allocated(subnet_id: str, ip: str) -> bool:
    return (
        IpAllocation.select()
        .where((IpAllocation.subnet == subnet_id) & (IpAllocation.ip_address == ip))
        .exists()
    )


def allocate(subnet_id: str, ip: str, port_id: str) -> bool:
    """Takes one address for a port; False when another port holds it (the
    primary key decides, also between racing controllers)."""
    return cached_insert_new(IpAllocation, subnet=subnet_id, ip_address=ip, port=port_id) is not None


def get_port(port_id: str) -> Port | None:
    return Port.get_or_none(Port.id == port_id)


def list_ports(
    page_size: int,
    page_token: str,
    project_id: str | None,
    name: str = "",
    network_id: str = "",
    instance_id: str = "",
) -> tuple[list[Port], str]:
    query = Port.select()
    if project_id is not None:
        query = query.where(Port.project == project_id)
    if name:
        query = query.where(Port.name == name)
    if network_id:
        query = query.where(Port.network == network_id)
    if instance_id:
        query = query.where(Port.instance_id == instance_id)
    return paginate(query, (Port.create_time, Port.id), page_size, page_token)


def update_port(port_id: str, fields: dict[str, Any], now: float) -> None:
    Port.update(**fields, update_time=now).where(Port.id == port_id).execute()


def set_port_groups(port_id: str, group_ids: list[str]) -> None:
    cached(
        "port groups delete", PortSecurityGroup.delete().where(PortSecurityGroup.port == port_id), [port_id]
    )
    for g in dict.fromkeys(group_ids):
        cached_insert(PortSecurityGroup, port=port_id, security_group=g)


def add_port_groups(port_id: str, group_ids: list[str]) -> None:
    """A new port's groups (it has none yet), in one statement."""
    groups = list(dict.fromkeys(group_ids))
    if groups:
        query = PortSecurityGroup.insert_many(
            [(port_id, g) for g in groups], fields=[PortSecurityGroup.port, PortSecurityGroup.security_group]
        )
        cached(("port groups add", len(groups)), query, [x for g in groups for x in (port_id, g)])


def bind_port(port_id: str, instance_id: str, nic_index: int, now: float) -> bool:
    """Binds a port only if it is still unbound (compare-and-set)."""
    n = (
        Port.update(instance_id=instance_id, nic_index=nic_index, update_time=now)
        .where((Port.id == port_id) & (Port.instance_id == ""))
        .execute()
    )
    return n == 1


def delete_port(port_id: str) -> int:
    IpAllocation.delete().where(IpAllocation.port == port_id).execute()
    PortSecurityGroup.delete().where(PortSecurityGroup.port == port_id).execute()
    return Port.delete().where(Port.id == port_id).execute()


def release_instance_ports(instance_id: str, now: float) -> list[Port]:
    """The instance is gone: deletes the ports made for it, unbinds the ones
    it was given. Returns the ports it had (to know whom to tell)."""
    ports = list(Port.select().where(Port.instance_id == instance_id))
    for p in ports:
        if p.auto_delete:
            delete_port(p.id)
        else:
            Port.update(instance_id="", nic_index=0, update_time=now).where(Port.id == p.id).execute()
    return ports


def network_ports(network_id: str) -> list[Port]:
    return list(Port.select().where(Port.network == network_id).order_by(Port.id))


def release_allocations(subnet_id: str) -> list[str]:
    """Frees every address of the subnet; the ports that held one."""
    holders = [
        r[0] for r in IpAllocation.select(IpAllocation.port).where(IpAllocation.subnet == subnet_id).tuples()
    ]
    IpAllocation.delete().where(IpAllocation.subnet == subnet_id).execute()
    return holders


def count_foreign_ports(network_id: str, project_id: str) -> int:
    """Ports of other projects on a (shared) network."""
    return Port.select().where((Port.network == network_id) & (Port.project != project_id)).count()


def count_ports(project_id: str) -> int:
    return Port.select().where(Port.project == project_id).count()


def count_bound_ports(network_id: str) -> int:
    return Port.select().where((Port.network == network_id) & (Port.instance_id != "")).count()


def port_ips(port_ids: Iterable[str]) -> dict[str, list[tuple[str, str]]]:
    """port id -> [(subnet id, address)], in subnet order."""
    ids = list(set(port_ids))
    out: dict[str, list[tuple[str, str]]] = defaultdict(list)
    if not ids:
        return out
    ids = padded(ids)
    query = (
        IpAllocation.select(IpAllocation.port, IpAllocation.subnet, IpAllocation.ip_address)
        .join(Subnet)
        .where(IpAllocation.port.in_(ids))
        .order_by(Subnet.ip_version, Subnet.create_time, IpAllocation.ip_address)
        .tuples()
    )
    for port_id, subnet_id, ip in cached_rows(("port ips", len(ids)), query, ids):
        out[port_id].append((subnet_id, ip))
    return out


def port_groups(port_ids: Iterable[str]) -> dict[str, list[str]]:
    ids = list(set(port_ids))
    out: dict[str, list[str]] = defaultdict(list)
    if not ids:
        return out
    ids = padded(ids)
    query = (
        PortSecurityGroup.select(PortSecurityGroup.port, PortSecurityGroup.security_group)
        .where(PortSecurityGroup.port.in_(ids))
        .order_by(PortSecurityGroup.security_group)
        .tuples()
    )
    for port_id, group_id in cached_rows(("port groups", len(ids)), query, ids):
        out[port_id].append(group_id)
    return out


def network_port_groups(network_ids: list[str]) -> dict[str, list[str]]:
    """port_groups of every port on the networks, in one query (a node's
    desired state: the ports of a batch's nodes are on these networks)."""
    out: dict[str, list[str]] = defaultdict(list)
    if not network_ids:
        return out
    ids = padded(network_ids)
    query = (
        PortSecurityGroup.select(PortSecurityGroup.port, PortSecurityGroup.security_group)
        .join(Port, on=(PortSecurityGroup.port == Port.id))
        .where(Port.network.in_(ids))
        .order_by(PortSecurityGroup.port, PortSecurityGroup.security_group)
        .tuples()
    )
    for port_id, group_id in cached_rows(("network port groups", len(ids)), query, ids):
        out[port_id].append(group_id)
    return out


def groups_of_ports(port_ids: Iterable[str]) -> set[str]:
    """The security groups any of the ports is in."""
    return {g for gs in port_groups(port_ids).values() for g in gs}


def ports_of_instances(instance_ids: Iterable[str]) -> dict[str, list[Port]]:
    """instance id -> its ports in NIC order."""
    ids = list(set(instance_ids))
    out: dict[str, list[Port]] = defaultdict(list)
    if not ids:
        return out
    ids = padded(ids)
    query = Port.select().where(Port.instance_id.in_(ids)).order_by(Port.nic_index, Port.id)
    for p in cached(("ports of instances", len(ids)), query, ids):
        out[p.instance_id].append(p)
    return out


def instance_nic_rows(instance_ids: Iterable[str]) -> dict[str, list[tuple[str, str, str, list[str]]]]:
    """instance id -> its NICs in NIC order, each (port id, network id, MAC,
    addresses in subnet order): ports and addresses in one query of plain
    tuples (the responses of every create, show and list page read these)."""
    ids = list(set(instance_ids))
    out: dict[str, list[tuple[str, str, str, list[str]]]] = defaultdict(list)
    if not ids:
        return out
    ids = padded(ids)
    query = (
        Port.select(Port.instance_id, Port.id, Port.network, Port.mac_address, IpAllocation.ip_address)
        .join(IpAllocation, peewee.JOIN.LEFT_OUTER, on=(IpAllocation.port == Port.id))
        .join(Subnet, peewee.JOIN.LEFT_OUTER, on=(Subnet.id == IpAllocation.subnet))
        .where(Port.instance_id.in_(ids))
        .order_by(Port.nic_index, Port.id, Subnet.ip_version, Subnet.create_time, IpAllocation.ip_address)
        .tuples()
    )
    last: dict[str, tuple[str, str, str, list[str]]] = {}
    for instance_id, port_id, network_id, mac, ip in cached_rows(("nics of instances", len(ids)), query, ids):
        nic = last.get(port_id)
        if nic is None:
            nic = last[port_id] = (port_id, network_id, mac, [])
            out[instance_id].append(nic)
        if ip is not None:
            nic[3].append(ip)
    return out


def instance_nodes(instance_ids: Iterable[str]) -> dict[str, str]:
    ids = list(set(instance_ids))
    if not ids:
        return {}
    return dict(Instance.select(Instance.id, Instance.node).where(Instance.id.in_(ids)).tuples())


# Which nodes care


def _bound_instances(
    network_ids: Iterable[str], group_ids: Iterable[str]
) -> tuple[list[str], list[str], Any]:
    """The networks and groups as padded IN lists, and a query of the instances
    with a port on one of the networks or in one of the groups, or in a group
    with a rule whose remote is one of them (None: neither given)."""
    nets, groups = list(set(network_ids)), list(set(group_ids))
    nets, groups = padded(nets) if nets else [], padded(groups) if groups else []
    conds = []
    if nets:
        conds.append(Port.network.in_(nets))
    if groups:
        referencing = SecurityGroupRule.select(SecurityGroupRule.security_group).where(
            SecurityGroupRule.remote_group.in_(groups)
        )
        members = PortSecurityGroup.select(PortSecurityGroup.port).where(
            PortSecurityGroup.security_group.in_(groups) | PortSecurityGroup.security_group.in_(referencing)
        )
        conds.append(Port.id.in_(members))
    if not conds:
        return nets, groups, None
    cond = conds[0] if len(conds) == 1 else (conds[0] | conds[1])
    return nets, groups, Port.select(Port.instance_id).where(cond & (Port.instance_id != ""))


def nodes_with_ports(network_ids: Iterable[str] = (), group_ids: Iterable[str] = ()) -> set[str]:
    """Nodes running instances with a port on one of the networks, or in one of
    the groups, or in a group with a rule whose remote is one of the groups:
    the nodes whose desired state changes when those change."""
    nets, groups, bound = _bound_instances(network_ids, group_ids)
    if bound is None:
        return set()
    query = Instance.select(Instance.node).where(Instance.id.in_(bound)).distinct().tuples()
    key = ("nodes with ports", len(nets), len(groups))
    return {r[0] for r in cached(key, query, [*nets, *groups, *groups, ""])}


def bump_nodes_with_ports(network_ids: Iterable[str], group_ids: Iterable[str], now: float) -> set[str]:
    """nodes_with_ports, with their desired revisions bumped (inside the write
    transaction). SQLite: one UPDATE ... RETURNING, where a read and an update
    take two statements under the write lock; PostgreSQL: bump_desired_revisions
    (one node at a time, in id order)."""
    if not is_sqlite():
        nodes = nodes_with_ports(network_ids, group_ids)
        bump_desired_revisions(nodes, now)
        return nodes
    nets, groups, bound = _bound_instances(network_ids, group_ids)
    if bound is None:
        return set()
    query = (
        Node.update(desired_revision=Node.desired_revision + 1, update_time=now)
        .where(Node.id.in_(Instance.select(Instance.node).where(Instance.id.in_(bound))))
        .returning(Node.id)
    )
    key = ("bump nodes with ports", len(nets), len(groups))
    return {r[0] for r in cached_rows(key, query, [1, now, *nets, *groups, *groups, ""])}


# Desired state


def may_have_ports(node_id: str) -> bool:
    """False only when node_ports(node_id, ...) is empty for any states: no
    port on an instance of the node, and no unfinished migration to it (a
    plain-SQL probe: a node's desired state asks on every change to it, and a
    node without NICs is asked for nothing else by the networks part)."""
    p = db.param
    sql = (
        f"SELECT 1 FROM {Port._meta.table_name} WHERE instance_id IN "
        f"(SELECT id FROM {Instance._meta.table_name} WHERE node_id = {p}) "
        f"UNION ALL SELECT 1 FROM {LiveMigration._meta.table_name} "
        f"WHERE target_node_id = {p} AND state IN ({p}, {p}) LIMIT 1"
    )
    return db.execute_sql(sql, (node_id, node_id, *UNFINISHED)).fetchone() is not None


def node_ports(node_id: str, skip_states: tuple[int, ...]) -> list[Port]:
    """Ports bound to the node's instances that the node should run, and to
    the instances live-migrating to it (it makes their ports before the guest comes)."""
    here = (Instance.node == node_id) | Instance.id.in_(incoming_instances(node_id))
    live = Instance.select(Instance.id).where(here & Instance.state.not_in(skip_states))
    query = Port.select().where(Port.instance_id.in_(live)).order_by(Port.id)
    params = [node_id, node_id, *UNFINISHED, *skip_states]
    return cached(("node ports", len(skip_states)), query, params)


def peer_ports(network_ids: list[str], skip_states: tuple[int, ...]) -> list[tuple[str, str, str]]:
    """(network id, node id, MAC) of the networks' ports, by node: each node
    that runs them is a VXLAN peer of the others."""
    if not network_ids:
        return []
    ids = padded(network_ids)
    query = (
        Port.select(Port.network, Instance.node, Port.mac_address)
        .join(Instance, on=(Port.instance_id == Instance.id))
        .where(Port.network.in_(ids) & Instance.state.not_in(skip_states))
        .order_by(Instance.node, Port.mac_address)
        .tuples()
    )
    key = ("peer ports", len(ids), len(skip_states))
    return cached_rows(key, query, [*ids, *skip_states])  # type: ignore[return-value]


def named_ports(network_ids: list[str], skip_states: tuple[int, ...]) -> list[tuple[str, str, str]]:
    """(network id, port id, instance name) of the networks' ports that any
    node runs, oldest port first: what the networks' resolvers name."""
    if not network_ids:
        return []
    query = (
        Port.select(Port.network, Port.id, Instance.name)
        .join(Instance, on=(Port.instance_id == Instance.id))
        .where(Port.network.in_(network_ids) & Instance.state.not_in(skip_states))
        .order_by(Port.create_time, Port.id)
        .tuples()
    )
    key = ("named ports", len(network_ids), len(skip_states))
    return cached_rows(key, query, [*network_ids, *skip_states])  # type: ignore[return-value]


def networks_by_id(network_ids: Iterable[str]) -> list[Network]:
    ids = list(set(network_ids))
    if not ids:
        return []
    query = Network.select().where(Network.id.in_(ids)).order_by(Network.id)
    return cached(("networks by id", len(ids)), query, ids)


def group_member_ips(group_ids: Iterable[str]) -> dict[str, list[str]]:
    """group id -> the addresses of every bound port in it, cloud-wide. An
    unbound port sends nothing, so it need not grow every node's rules."""
    ids = list(set(group_ids))
    out: dict[str, list[str]] = defaultdict(list)
    if not ids:
        return out
    query = (
        PortSecurityGroup.select(PortSecurityGroup.security_group, IpAllocation.ip_address)
        .join(IpAllocation, on=(IpAllocation.port == PortSecurityGroup.port))
        .join(Port, on=(Port.id == PortSecurityGroup.port))
        .where(PortSecurityGroup.security_group.in_(ids) & (Port.instance_id != ""))
        .order_by(PortSecurityGroup.security_group, IpAllocation.ip_address)
        .tuples()
    )
    for group_id, ip in cached_rows(("group member ips", len(ids)), query, [*ids, ""]):
        out[group_id].append(ip)
    return out


# Security groups


def insert_group(fields: dict[str, Any]) -> SecurityGroup:
    try:
        with db.atomic():
            return SecurityGroup.create(**fields)
    except peewee.IntegrityError:
        raise AlreadyExists(
            f"a security group named {fields['name']!r} already exists", reason="SECURITY_GROUP_EXISTS"
        ) from None


def get_group(group_id: str) -> SecurityGroup | None:
    return SecurityGroup.get_or_none(SecurityGroup.id == group_id)


def find_group(project_id: str, name: str) -> SecurityGroup | None:
    return SecurityGroup.get_or_none((SecurityGroup.project == project_id) & (SecurityGroup.name == name))


def default_group(project_id: str) -> SecurityGroup | None:
    query = SecurityGroup.select().where((SecurityGroup.project == project_id) & SecurityGroup.is_default)
    return cached_first("default group", query, [project_id])


def insert_default_group(fields: dict[str, Any], rules: list[dict[str, Any]]) -> SecurityGroup | None:
    """The default group with its rules, or None when a racing call made it first."""
    try:
        with db.atomic():
            row = SecurityGroup.create(**fields)
            SecurityGroupRule.insert_many(rules).execute()
            return row
    except peewee.IntegrityError:
        return None


def list_groups(
    page_size: int, page_token: str, name: str, project_id: str | None
) -> tuple[list[SecurityGroup], str]:
    query = SecurityGroup.select()
    if project_id is not None:
        query = query.where(SecurityGroup.project == project_id)
    if name:
        query = query.where(SecurityGroup.name == name)
    return paginate(query, (SecurityGroup.name, SecurityGroup.id), page_size, page_token)


def update_group(group_id: str, fields: dict[str, Any], now: float) -> None:
    try:
        with db.atomic():
            SecurityGroup.update(**fields, update_time=now).where(SecurityGroup.id == group_id).execute()
    except peewee.IntegrityError:
        raise AlreadyExists(
            f"a security group named {fields.get('name')!r} already exists", reason="SECURITY_GROUP_EXISTS"
        ) from None


def delete_group(group_id: str) -> int:
    SecurityGroupRule.delete().where(
        (SecurityGroupRule.security_group == group_id) | (SecurityGroupRule.remote_group == group_id)
    ).execute()
    return SecurityGroup.delete().where(SecurityGroup.id == group_id).execute()


def count_group_ports(group_id: str) -> int:
    return PortSecurityGroup.select().where(PortSecurityGroup.security_group == group_id).count()


def count_groups(project_id: str) -> int:
    """The project's groups other than its default one (that goes with it)."""
    return (
        SecurityGroup.select()
        .where((SecurityGroup.project == project_id) & ~SecurityGroup.is_default)
        .count()
    )


def groups_by_id(group_ids: Iterable[str]) -> list[SecurityGroup]:
    ids = list(set(group_ids))
    if not ids:
        return []
    return list(SecurityGroup.select().where(SecurityGroup.id.in_(ids)).order_by(SecurityGroup.id))


def rules_of(group_ids: Iterable[str]) -> dict[str, list[SecurityGroupRule]]:
    ids = list(set(group_ids))
    out: dict[str, list[SecurityGroupRule]] = defaultdict(list)
    if not ids:
        return out
    query = (
        SecurityGroupRule.select()
        .where(SecurityGroupRule.security_group.in_(ids))
        .order_by(SecurityGroupRule.create_time, SecurityGroupRule.id)
    )
    for r in cached(("rules of", len(ids)), query, ids):
        out[r.security_group_id].append(r)
    return out


def insert_rule(fields: dict[str, Any]) -> SecurityGroupRule:
    return SecurityGroupRule.create(**fields)


def get_rule(rule_id: str) -> SecurityGroupRule | None:
    return SecurityGroupRule.get_or_none(SecurityGroupRule.id == rule_id)


def delete_rule(rule_id: str) -> int:
    return SecurityGroupRule.delete().where(SecurityGroupRule.id == rule_id).execute()
