"""Quotas: per-project limits over the cloud defaults, and usage counters kept
in the transaction that creates or deletes what they count.

Every feature that makes a counted resource gets the one `Quotas` object from
the composition root and calls `charge` inside its own write transaction (a
refusal raises, so the caller's transaction rolls back whatever it charged
before) and `release` in the transaction that removes the row. A limit below
what a project already uses is allowed: it only refuses new charges.

What each resource counts: every instance (vCPUs, RAM MiB of each) until the
controller forgets it; every volume (its GiB) and volume snapshot until its
row goes; images that are not DELETED; networks; ports; security groups other
than the project's default one (that one goes with the project); floating IPs
(charged by the feature that makes them)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from controller import clock
from controller.auth.principal import Principal
from controller.config import ControllerConfig
from controller.db import identity as identity_store
from controller.db import quotas as store
from controller.db.database import db, write_transaction
from controller.errors import InvalidArgument, ResourceExhausted, not_found

UNLIMITED = -1
# The resources, in the order charges take their counters (one order, so two
# PostgreSQL transactions never wait on each other's counters in a cycle),
# with the words error messages use.
LABELS: Mapping[str, str] = MappingProxyType(
    {
        "instances": "instances",
        "vcpus": "vCPUs",
        "ram_mb": "RAM MiB",
        "volumes": "volumes",
        "volume_gb": "volume GiB",
        "snapshots": "volume snapshots",
        "images": "images",
        "networks": "networks",
        "ports": "ports",
        "security_groups": "security groups",
        "floating_ips": "floating IPs",
    }
)
RESOURCES = tuple(LABELS)
# Refusals whose reason predates QUOTA_EXCEEDED keep it.
_REASONS = MappingProxyType({"images": "IMAGE_QUOTA_COUNT"})


def defaults_from(cfg: ControllerConfig) -> dict[str, int]:
    """The cloud's default limits, from the controller's settings."""
    return {
        "instances": cfg.quota_instances,
        "vcpus": cfg.quota_vcpus,
        "ram_mb": cfg.quota_ram_mb,
        "volumes": cfg.quota_volumes,
        "volume_gb": cfg.quota_volume_gb,
        "snapshots": cfg.quota_volume_snapshots,
        "images": cfg.image_quota_count,
        "networks": cfg.quota_networks,
        "ports": cfg.quota_ports,
        "security_groups": cfg.quota_security_groups,
        "floating_ips": cfg.quota_floating_ips,
    }


def check_limit(value: int, field: str) -> int:
    if value < UNLIMITED:
        raise InvalidArgument(f"{field} must be -1 (unlimited) or at least 0, got {value}")
    return value


@dataclass(frozen=True)
class QuotaView:
    """A project's quota: its effective limits, usage and the cloud defaults."""

    project_id: str
    limits: Mapping[str, int]
    usage: Mapping[str, int]
    defaults: Mapping[str, int]


class Quotas:
    def __init__(self, defaults: Mapping[str, int]) -> None:
        unknown = set(defaults) ^ set(RESOURCES)
        if unknown:
            raise ValueError(f"quota defaults must name exactly {RESOURCES}; wrong: {sorted(unknown)}")
        for resource, value in defaults.items():
            check_limit(value, f"the default quota for {resource}")
        self.defaults: Mapping[str, int] = MappingProxyType(dict(defaults))

    def limits(self, project_id: str) -> dict[str, int]:
        return {**self.defaults, **store.overrides(project_id)}

    # Inside the caller's transaction

    def charge(self, project_id: str, amounts: Mapping[str, int], project_name: str = "") -> None:
        """Counts `amounts` against the project's limits, or raises
        RESOURCE_EXHAUSTED QUOTA_EXCEEDED naming the first resource that does
        not fit (the caller's transaction then undoes the others)."""
        wanted = [(r, amounts[r]) for r in RESOURCES if amounts.get(r, 0) > 0]
        if not wanted:
            return
        assert db.in_transaction(), "quota charges belong in the caller's write transaction"
        # One statement charges every counter that exists and fits; only a
        # project's first charge of a resource, or a refusal, costs more.
        charged = store.add_all_within(project_id, wanted, {r: self.defaults[r] for r, _ in wanted})
        if len(charged) == len(wanted):
            return
        limits = self.limits(project_id)
        for resource, n in wanted:
            if resource in charged:
                continue
            limit = limits[resource]
            if not store.add_within(project_id, resource, n, limit):
                used = store.used(project_id, resource)
                label = LABELS[resource]
                raise ResourceExhausted(
                    f"quota exceeded for {label}: project {project_name or project_id!r} uses {used}, "
                    f"its quota is {limit}; this needs {n} more",
                    reason=_REASONS.get(resource, "QUOTA_EXCEEDED"),
                    resource=resource,
                    limit=limit,
                    used=used,
                    requested=n,
                )

    def release(self, project_id: str, amounts: Mapping[str, int]) -> None:
        """Gives back what a removed resource held (never refused)."""
        for resource in RESOURCES:
            n = amounts.get(resource, 0)
            if n > 0:
                store.subtract(project_id, resource, n)

    # GetQuota and UpdateQuota

    def _project(self, caller: Principal, project_id: str) -> str:
        row = identity_store.get_project(project_id)
        if row is None or not caller.can_see(row.id):
            raise not_found("project", project_id)
        return row.id

    def _view(self, project_id: str) -> QuotaView:
        used = store.usage(project_id)
        return QuotaView(
            project_id,
            MappingProxyType(self.limits(project_id)),
            MappingProxyType({r: used.get(r, 0) for r in RESOURCES}),
            self.defaults,
        )

    def show(self, caller: Principal, project_id: str) -> QuotaView:
        return self._view(self._project(caller, project_id))

    def update(self, caller: Principal, project_id: str, limits: Mapping[str, int | None]) -> QuotaView:
        """Sets the project's own limits (admins; the policy table says so);
        None drops the project's own limit, so the cloud default applies again."""
        for resource, value in limits.items():
            if resource not in LABELS:
                raise InvalidArgument(f"unknown quota resource {resource!r}")
            if value is not None:
                check_limit(value, f"quota.limits.{resource}")
        with write_transaction():
            pid = self._project(caller, project_id)
            store.set_limits(pid, dict(limits), clock.now())
        return self._view(pid)
