"""Security groups and their rules: stateful allow rules per port, the
project's default group (made on first need), and rule checks. A change to a
group reaches every node that holds a port in it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from controller import clock
from controller.auth.principal import Principal
from controller.db import networks as store
from controller.db.database import write_transaction
from controller.db.models import SecurityGroup, SecurityGroupRule
from controller.domain.idempotency import RequestKey, idempotent_create
from controller.domain.networks.addresses import parse_cidr
from controller.domain.networks.changes import NodeChanges
from controller.domain.quotas import Quotas
from controller.errors import AlreadyExists, FailedPrecondition, InvalidArgument, not_found
from kumo.ids import is_uuid

PROTOCOLS = ("tcp", "udp", "icmp", "icmpv6", "")
DEFAULT_GROUP = "default"
INGRESS, EGRESS = "ingress", "egress"


def check_rule(fields: Mapping[str, Any]) -> dict[str, Any]:
    """A rule's columns from what a caller asked for (`direction` is
    INGRESS, EGRESS or anything else for unknown; `remote_group` an id or
    None), or INVALID_ARGUMENT. The IP version follows a remote CIDR; without
    one it defaults to 4."""
    direction = fields.get("direction", "")
    protocol = fields.get("protocol", "")
    asked_version = fields.get("ip_version", 0)
    if direction not in (INGRESS, EGRESS):
        raise InvalidArgument("rule.direction must be INGRESS or EGRESS")
    if protocol not in PROTOCOLS:
        raise InvalidArgument(
            f"rule.protocol must be one of tcp, udp, icmp, icmpv6 or empty, got {protocol!r}"
        )
    if fields.get("remote_cidr") and fields.get("remote_group"):
        raise InvalidArgument("rule.remote_cidr and rule.remote_group_id: give at most one")
    version = asked_version
    remote_cidr = ""
    if fields.get("remote_cidr"):
        net = parse_cidr(fields["remote_cidr"], "rule.remote_cidr")
        remote_cidr = str(net)
        if version and version != net.version:
            raise InvalidArgument(f"rule.remote_cidr is IPv{net.version}, ip_version says {version}")
        version = net.version
    version = version or 4
    if version not in (4, 6):
        raise InvalidArgument(f"rule.ip_version must be 4 or 6, got {asked_version}")
    if (protocol == "icmp" and version == 6) or (protocol == "icmpv6" and version == 4):
        raise InvalidArgument(f"rule.protocol {protocol} does not go with IPv{version}")
    lo, hi = fields.get("port_range_min", 0), fields.get("port_range_max", 0)
    if lo or hi:
        if protocol not in ("tcp", "udp"):
            raise InvalidArgument("rule.port_range_min/max are for tcp and udp only")
        if not (1 <= lo <= hi <= 65535):
            raise InvalidArgument(f"rule port range must be 1 <= min <= max <= 65535, got {lo}-{hi}")
    return {
        **fields,
        "direction": direction,
        "ip_version": version,
        "protocol": protocol,
        "port_range_min": lo,
        "port_range_max": hi,
        "remote_cidr": remote_cidr,
        "remote_group": fields.get("remote_group") or None,
    }


class SecurityGroups:
    def __init__(self, changes: NodeChanges, quotas: Quotas) -> None:
        self.changes = changes
        self.quotas = quotas

    def ensure_default_group(self, project_id: str) -> SecurityGroup:
        """The project's default group, made on first need (idempotent, race-safe)."""
        row = store.default_group(project_id)
        if row is not None:
            return row
        now = clock.now()
        gid = clock.new_id()
        rules = []
        for direction in (EGRESS, INGRESS):
            for version in (4, 6):
                rules.append(
                    {
                        "id": clock.new_id(),
                        "security_group": gid,
                        "direction": direction,
                        "ip_version": version,
                        "protocol": "",
                        "remote_group": gid if direction == INGRESS else None,
                        "create_time": now,
                    }
                )
        made = store.insert_default_group(
            {
                "id": gid,
                "project": project_id,
                "name": DEFAULT_GROUP,
                "description": "all egress; ingress from members of this group",
                "is_default": True,
                "create_time": now,
                "update_time": now,
            },
            rules,
        )
        if made is not None:
            return made
        row = store.default_group(project_id)
        if row is None:
            raise FailedPrecondition(
                f"this project has a security group named {DEFAULT_GROUP!r} that is not its default group",
                reason="SECURITY_GROUP_EXISTS",
            )
        return row

    def get_group(self, caller: Principal, group_id: str) -> SecurityGroup:
        row = store.get_group(group_id)
        if row is None or not caller.can_see(row.project_id):
            raise not_found("security group", group_id)
        return row

    def find_group(self, caller: Principal, project_id: str, ref: str) -> SecurityGroup:
        """By id or name, in `project_id` (the project of the port it is for)."""
        if is_uuid(ref):
            row = store.get_group(ref)
        else:
            row = (
                self.ensure_default_group(project_id)
                if ref == DEFAULT_GROUP
                else store.find_group(project_id, ref)
            )
        if row is None or row.project_id != project_id or not caller.can_see(row.project_id):
            raise not_found("security group", ref)
        return row

    def check_refs(self, caller: Principal, refs: list[str]) -> None:
        """Before the write transaction: every named group but the default one
        exists in the caller's project (the default is made when bound)."""
        for ref in refs:
            if ref != DEFAULT_GROUP:
                self.find_group(caller, caller.project_id, ref)

    def existing_default(self, project_id: str) -> str:
        """The project's default group's id, read before a write transaction
        that will give a port that group: a default group is never deleted
        (SECURITY_GROUP_DEFAULT), so the id read here still holds inside it,
        and the transaction needs no read of its own. Empty: not made yet
        (groups_for makes it then)."""
        row = store.default_group(project_id)
        return row.id if row is not None else ""

    def groups_for(self, caller: Principal, project_id: str, refs: list[str]) -> list[str]:
        """The group ids a port gets: the ones named (each once), or the
        project's default group."""
        if not refs:
            return [self.ensure_default_group(project_id).id]
        return list(dict.fromkeys(self.find_group(caller, project_id, r).id for r in refs))

    def list_groups(
        self, caller: Principal, page_size: int, page_token: str, name: str
    ) -> tuple[list[SecurityGroup], str]:
        if store.default_group(caller.project_id) is None:
            with write_transaction():
                self.ensure_default_group(caller.project_id)
        return store.list_groups(page_size, page_token, name, None if caller.is_admin else caller.project_id)

    def rules(self, group_ids: Iterable[str]) -> dict[str, list[SecurityGroupRule]]:
        return store.rules_of(group_ids)

    def create_group(
        self, caller: Principal, name: str, description: str, request_key: RequestKey
    ) -> SecurityGroup:
        if name == DEFAULT_GROUP:
            raise AlreadyExists(
                f"{DEFAULT_GROUP!r} is the project's default group", reason="SECURITY_GROUP_EXISTS"
            )

        def make() -> SecurityGroup:
            self.quotas.charge(caller.project_id, {"security_groups": 1}, caller.project_name)
            now = clock.now()
            return store.insert_group(
                {
                    "id": clock.new_id(),
                    "project": caller.project_id,
                    "name": name,
                    "description": description,
                    "create_time": now,
                    "update_time": now,
                }
            )

        return idempotent_create(
            "security_group",
            caller.project_id,
            request_key,
            make,
            lambda i: self.get_group(caller, i),
            lambda g: g.id,
        )

    def update_group(self, caller: Principal, group_id: str, fields: dict[str, Any]) -> SecurityGroup:
        with write_transaction():
            row = self.get_group(caller, group_id)
            if (
                "name" in fields
                and fields["name"] != row.name
                and (row.is_default or fields["name"] == DEFAULT_GROUP)
            ):
                raise InvalidArgument(f"the name {DEFAULT_GROUP!r} belongs to the project's default group")
            store.update_group(row.id, fields, clock.now())
        return self.get_group(caller, group_id)

    def delete_group(self, caller: Principal, group_id: str) -> None:
        with write_transaction():
            row = self.get_group(caller, group_id)
            if row.is_default:
                raise FailedPrecondition(
                    "the project's default security group cannot be deleted", reason="SECURITY_GROUP_DEFAULT"
                )
            used = store.count_group_ports(row.id)
            if used:
                raise FailedPrecondition(
                    f"security group {row.name!r} is used by {used} port(s)", reason="SECURITY_GROUP_IN_USE"
                )
            nodes = store.nodes_with_ports(group_ids=[row.id])
            if store.delete_group(row.id):
                self.quotas.release(row.project_id, {"security_groups": 1})
            nodes = self.changes.bump(nodes)
        self.changes.notify(nodes)

    def create_rule(
        self, caller: Principal, fields: Mapping[str, Any], request_key: RequestKey
    ) -> SecurityGroupRule:
        """`fields` as check_rule takes them, plus `security_group` (the
        group's id) and `description`; checked here before the group is."""
        fields = check_rule(fields)
        group = self.get_group(caller, fields["security_group"])
        remote = fields.get("remote_group")
        if remote:
            other = store.get_group(remote)
            if other is None or other.project_id != group.project_id:
                raise not_found("security group", remote)
        same = ("direction", "ip_version", "protocol", "port_range_min", "port_range_max", "remote_cidr")
        nodes: set[str] = set()

        def make() -> SecurityGroupRule:  # inside idempotent_create's write transaction
            self.get_group(caller, group.id)
            for r in store.rules_of([group.id]).get(group.id, []):
                if all(getattr(r, k) == fields[k] for k in same) and (r.remote_group_id or None) == remote:
                    raise AlreadyExists(
                        f"security group {group.name!r} has this rule already ({r.id})",
                        reason="SECURITY_GROUP_RULE_EXISTS",
                    )
            row = store.insert_rule({**fields, "id": clock.new_id(), "create_time": clock.now()})
            nodes.update(self.changes.bump(store.nodes_with_ports(group_ids=[group.id])))
            return row

        row = idempotent_create(
            "security_group_rule",
            caller.project_id,
            request_key,
            make,
            lambda rule_id: self.get_rule(caller, rule_id),
            lambda r: r.id,
        )
        self.changes.notify(nodes)  # after the commit
        return row

    def get_rule(self, caller: Principal, rule_id: str) -> SecurityGroupRule:
        """A rule of a group the caller may see."""
        row = store.get_rule(rule_id)
        group = store.get_group(row.security_group_id) if row is not None else None
        if row is None or group is None or not caller.can_see(group.project_id):
            raise not_found("security group rule", rule_id)
        return row

    def delete_rule(self, caller: Principal, rule_id: str) -> None:
        with write_transaction():
            row = store.get_rule(rule_id)
            if row is None:
                raise not_found("security group rule", rule_id)
            group = store.get_group(row.security_group_id)
            if group is None or not caller.can_see(group.project_id):
                raise not_found("security group rule", rule_id)
            nodes = store.nodes_with_ports(group_ids=[group.id])
            store.delete_rule(row.id)
            nodes = self.changes.bump(nodes)
        self.changes.notify(nodes)
