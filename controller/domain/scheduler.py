"""The scheduler: filters then weighers over node candidates, as Nova's filter
scheduler does, but pure: it reads no database and claims nothing. The
caller (domain/instances.py) claims the chosen node atomically and asks again
when the claim loses a race."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from controller.errors import ResourceExhausted


@dataclass(frozen=True)
class Ratios:
    """Allocation ratios: how far a node's real capacity may be overcommitted."""

    cpu: float = 4.0
    ram: float = 1.0
    disk: float = 1.0


class Candidate(NamedTuple):
    """One node as the filters see it. A NamedTuple, not a frozen dataclass:
    a create builds SAMPLE of them, and a frozen dataclass's __init__ cost
    more than the ranking."""

    node_id: str
    name: str
    ready: bool
    enabled: bool
    vcpus: int
    ram_mb: int
    disk_gb: int
    vcpus_used: int = 0
    ram_mb_used: int = 0
    disk_gb_used: int = 0
    # The storage backends the node advertises (NodeInventory.storage_backends).
    storage_backends: tuple[str, ...] = ()
    # In maintenance (being drained); where it takes live migrations ("": none).
    maintenance: bool = False
    migration_address: str = ""

    def free(self, ratios: Ratios) -> tuple[float, float, float]:
        return (
            self.vcpus * ratios.cpu - self.vcpus_used,
            self.ram_mb * ratios.ram - self.ram_mb_used,
            self.disk_gb * ratios.disk - self.disk_gb_used,
        )


@dataclass(frozen=True)
class Request:
    vcpus: int
    ram_mb: int
    disk_gb: int
    # Server group: its policy ("affinity" | "anti-affinity" | "") and the
    # nodes its existing members are on.
    group_policy: str = ""
    group_nodes: frozenset[str] = frozenset()
    # A volume or other resource that pins the instance to one node.
    required_node: str = ""
    # A volume on a shared storage backend: only nodes that reach it.
    required_backend: str = ""
    # A live migration: not its source node, only nodes that take migrations.
    migrating_from: str = ""


Filter = Callable[[Candidate, Request, Ratios], bool]


def _ready(c: Candidate, r: Request, ratios: Ratios) -> bool:
    return c.ready


def _enabled(c: Candidate, r: Request, ratios: Ratios) -> bool:
    return c.enabled


def _cpu(c: Candidate, r: Request, ratios: Ratios) -> bool:
    return c.vcpus * ratios.cpu - c.vcpus_used >= r.vcpus


def _ram(c: Candidate, r: Request, ratios: Ratios) -> bool:
    return c.ram_mb * ratios.ram - c.ram_mb_used >= r.ram_mb


def _disk(c: Candidate, r: Request, ratios: Ratios) -> bool:
    return c.disk_gb * ratios.disk - c.disk_gb_used >= r.disk_gb


def affinity_ok(c: Candidate, r: Request, ratios: Ratios) -> bool:
    if r.group_policy == "affinity" and r.group_nodes:
        return c.node_id in r.group_nodes
    return True


def anti_affinity_ok(c: Candidate, r: Request, ratios: Ratios) -> bool:
    if r.group_policy == "anti-affinity":
        return c.node_id not in r.group_nodes
    return True


def _pinned(c: Candidate, r: Request, ratios: Ratios) -> bool:
    return not r.required_node or c.node_id == r.required_node


def _backend(c: Candidate, r: Request, ratios: Ratios) -> bool:
    return not r.required_backend or r.required_backend in c.storage_backends


def _in_service(c: Candidate, r: Request, ratios: Ratios) -> bool:
    return not c.maintenance


def _not_source(c: Candidate, r: Request, ratios: Ratios) -> bool:
    return not r.migrating_from or c.node_id != r.migrating_from


def _takes_migrations(c: Candidate, r: Request, ratios: Ratios) -> bool:
    return not r.migrating_from or bool(c.migration_address)


FILTERS: list[tuple[str, Filter]] = [
    ("NodeReadyFilter", _ready),
    ("NodeEnabledFilter", _enabled),
    ("NodeMaintenanceFilter", _in_service),
    ("SourceNodeFilter", _not_source),
    ("MigrationAddressFilter", _takes_migrations),
    ("RequiredNodeFilter", _pinned),
    ("StorageBackendFilter", _backend),
    ("VcpuFilter", _cpu),
    ("RamFilter", _ram),
    ("DiskFilter", _disk),
    ("AffinityFilter", affinity_ok),
    ("AntiAffinityFilter", anti_affinity_ok),
]

# Filters that pass every node for some requests (no group, no pinning, not a
# migration: most creates), and when: `schedule` leaves them out then, which
# changes no result and no count.
_IDLE: dict[str, Callable[[Request], bool]] = {
    "SourceNodeFilter": lambda r: not r.migrating_from,
    "MigrationAddressFilter": lambda r: not r.migrating_from,
    "RequiredNodeFilter": lambda r: not r.required_node,
    "StorageBackendFilter": lambda r: not r.required_backend,
    "AffinityFilter": lambda r: not (r.group_policy == "affinity" and r.group_nodes),
    "AntiAffinityFilter": lambda r: r.group_policy != "anti-affinity",
}


# What active_filters leaves of a create with no group, pinning or migration.
_PLAIN = tuple(name for name, _ in FILTERS if name not in _IDLE)


def active_filters(request: Request) -> list[tuple[str, Filter]]:
    """The filters that can reject a node for `request`, in FILTERS order."""
    return [(name, check) for name, check in FILTERS if not (name in _IDLE and _IDLE[name](request))]


@dataclass
class Outcome:
    ranked: list[Candidate]
    rejected: dict[str, int] = field(default_factory=dict)
    considered: int = 0
    # When ranking began (perf_counter), for the scheduling-latency metric.
    started: float = field(default_factory=time.perf_counter, compare=False, repr=False)

    def explain(self, r: Request) -> str:
        wanted = f"{r.vcpus} vCPU, {r.ram_mb} MiB RAM, {r.disk_gb} GiB disk"
        if self.considered == 0:
            return f"no valid host for {wanted}: there are no nodes"
        parts = [f"{name} rejected {n}" for name, n in self.rejected.items() if n]
        return f"no valid host for {wanted}: {self.considered} node(s) considered; " + ", ".join(parts)


def schedule(
    candidates: Iterable[Candidate], request: Request, ratios: Ratios, weigher: str = "spread"
) -> Outcome:
    """Runs the filters in order (a node is counted against the first filter
    that rejects it) and ranks the survivors, best first."""
    outcome = Outcome(ranked=[], rejected={name: 0 for name, _ in FILTERS})
    checks = active_filters(request)
    rejected = outcome.rejected
    ranked = outcome.ranked
    considered = 0
    # The filters of a plain create (_PLAIN), inlined: a node they all pass
    # skips six calls; one that fails goes through them for the counts.
    plain = tuple(name for name, _ in checks) == _PLAIN
    cpu_ratio, ram_ratio, disk_ratio = ratios.cpu, ratios.ram, ratios.disk
    vcpus, ram_mb, disk_gb = request.vcpus, request.ram_mb, request.disk_gb
    for cand in candidates:
        considered += 1
        if (
            plain
            and cand.ready
            and cand.enabled
            and not cand.maintenance
            and cand.vcpus * cpu_ratio - cand.vcpus_used >= vcpus
            and cand.ram_mb * ram_ratio - cand.ram_mb_used >= ram_mb
            and cand.disk_gb * disk_ratio - cand.disk_gb_used >= disk_gb
        ):
            ranked.append(cand)
            continue
        for name, check in checks:
            if not check(cand, request, ratios):
                rejected[name] += 1
                break
        else:
            ranked.append(cand)
    outcome.considered = considered
    sign = -1.0 if weigher == "spread" else 1.0

    def key(c: Candidate) -> tuple[float, str]:
        ram_cap, cpu_cap = c.ram_mb * ram_ratio, c.vcpus * cpu_ratio
        share = (ram_cap - c.ram_mb_used) / max(ram_cap, 1) + (cpu_cap - c.vcpus_used) / max(cpu_cap, 1)
        return (sign * share, c.name)

    # spread: most free first; pack: least free first. Ties by name for stable results.
    ranked.sort(key=key)
    return outcome


def no_valid_host(outcome: Outcome, request: Request) -> ResourceExhausted:
    return ResourceExhausted(
        outcome.explain(request),
        reason="NO_VALID_HOST",
        **{f"rejected_by_{k}": v for k, v in outcome.rejected.items() if v},
    )
