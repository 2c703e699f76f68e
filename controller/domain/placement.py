"""Where things may go: node candidates (capacity from the live session, claims
from node_usage), a random sample of them on big fleets (ranked from an
in-memory copy of their rows, usage_copy.py), and the atomic claim of the best
ranked node that still fits. Instances and volumes both place
through it, so they see one picture of capacity."""

from __future__ import annotations

import random
import time
from typing import Any

from controller.db import instances as store
from controller.domain.node_registry import NodeRegistry
from controller.domain.scheduler import (
    Candidate,
    Outcome,
    Ratios,
    Request,
    affinity_ok,
    anti_affinity_ok,
    no_valid_host,
    schedule,
)
from controller.domain.usage_copy import Row, UsageCopy
from controller.metrics import ControllerMetrics
from kumo.v1 import node_pb2

# The registry's capacities(): node id -> (READY?, its live inventory or None).
Capacities = dict[str, tuple[bool, node_pb2.NodeInventory | None]]

# On fleets over twice this size, a create ranks this many random READY nodes.
SAMPLE = 64

# How old the in-memory copy of the nodes' claims that a sample ranks from may
# grow before it is read again (usage_copy.py): the bound on how late a change
# made elsewhere (another controller, a resize, a move) shows in rankings.
USAGE_MAX_AGE = 1.0


def _candidate(row: Row, ready: bool, inv: node_pb2.NodeInventory | None) -> Candidate:
    """A node's Candidate from its row (store.candidates) and live state;
    capacity from the live inventory when there is one."""
    node_id, name, enabled, vcpus, ram, disk, v_used, r_used, d_used, maint = row
    backends: tuple[str, ...] = ()
    migration_address = ""
    if inv is not None:
        vcpus, ram, disk = inv.vcpus, inv.memory_mb, inv.disk_gb
        backends, migration_address = tuple(inv.storage_backends), inv.migration_address
    return Candidate(
        node_id,
        name,
        ready,
        bool(enabled),
        vcpus,
        ram,
        disk,
        v_used,
        r_used,
        d_used,
        backends,
        bool(maint),
        migration_address,
    )


class Placement:
    def __init__(
        self,
        registry: NodeRegistry,
        ratios: Ratios,
        weigher: str,
        metrics: ControllerMetrics,
        usage: UsageCopy | None = None,
    ) -> None:
        self.registry = registry
        self.ratios = ratios
        self.weigher = weigher
        self.metrics = metrics
        self.usage = usage if usage is not None else UsageCopy(USAGE_MAX_AGE)
        # node id -> (its copy row, live inventory and READY? when built, the
        # Candidate): a sampled node whose row and session entry are the same
        # objects as last time reuses its Candidate (building 64 was 4% of the
        # controller's time). Emptied when the copy is read again whole.
        self._built: dict[str, tuple[Row, node_pb2.NodeInventory | None, bool, Candidate]] = {}
        self._built_generation = -1
        # kind -> its scheduling_seconds and placements series.
        self._series: dict[str, tuple[Any, Any]] = {}

    def record(self, kind: str, outcome: Outcome, placed: bool) -> None:
        """Counts a placement (or a refusal, under the filter that rejected
        most nodes) and how long it took since `outcome` was ranked."""
        m = self.metrics
        series = self._series.get(kind)
        if series is None:  # labels() costs a lock and a tuple per call: once per kind
            series = self._series[kind] = (m.scheduling_seconds.labels(kind), m.placements.labels(kind))
        series[0].observe(time.perf_counter() - outcome.started)
        if placed:
            series[1].inc()
        else:
            worst = max(outcome.rejected.items(), key=lambda kv: kv[1], default=("", 0))
            m.no_valid_host.labels(kind, worst[0] if worst[1] else "NoNodes").inc()

    def sample(self) -> list[str] | None:
        """A random subset of the READY nodes to rank, on big fleets (as
        Kubernetes scores a share of its nodes): a create reads SAMPLE nodes,
        not all of them. None: rank every node."""
        ready = self.registry.ready_ids()
        if len(ready) <= 2 * SAMPLE:
            return None
        return random.sample(ready, SAMPLE)

    def candidates(self, only: list[str] | None = None, live: Capacities | None = None) -> list[Candidate]:
        """Nodes with capacity and claims, from the database; capacity from the
        live session when there is one (the database copy is written in
        batches). `live`: the registry's capacities() when the caller has them."""
        live = self.registry.capacities(only) if live is None else live
        return self._candidates(store.candidates(only), live)

    @staticmethod
    def _candidates(rows: list[Row], live: Capacities) -> list[Candidate]:
        absent = (False, None)
        return [_candidate(row, *live.get(row[0], absent)) for row in rows]

    def rank(self, request: Request) -> tuple[Outcome, bool]:
        """A create's ranking, outside the write lock: of a random sample of
        the READY nodes on big fleets, from the in-memory copy of their rows
        (True: sampled, so a refusal is not yet the answer: the caller ranks
        every node from the database then), of every node from the database
        on small ones."""
        sample = self.sample()
        if sample is None:
            return schedule(self.candidates(), request, self.ratios, self.weigher), False
        rows = self.usage.rows(sample)
        cands = self._reused(rows, self.registry.capacities(sample))
        return schedule(cands, request, self.ratios, self.weigher), True

    def _reused(self, rows: list[Row], live: Capacities) -> list[Candidate]:
        """_candidates of a sample, reusing the Candidates of unchanged nodes."""
        if self._built_generation != self.usage.generation:
            self._built = {}
            self._built_generation = self.usage.generation
        built = self._built
        out = []
        absent = (False, None)
        for row in rows:
            ready, inv = live.get(row[0], absent)
            memo = built.get(row[0])
            if memo is not None and memo[0] is row and memo[1] is inv and memo[2] is ready:
                out.append(memo[3])
                continue
            cand = _candidate(row, ready, inv)
            built[row[0]] = (row, inv, ready, cand)
            out.append(cand)
        return out

    def disk_cap(self, node_id: str) -> float:
        """The node's disk with the allocation ratio applied (0 for an unknown node)."""
        for cand in self.candidates([node_id]):
            return cand.disk_gb * self.ratios.disk
        return 0.0

    def claim(self, outcome: Outcome, req: Request, final: bool = True) -> str:
        """Claims the best ranked node that still fits, in the write transaction;
        a node that lost its room (or its place in the group) meanwhile is skipped.
        `final`: a refusal is the answer (not a sample retried on every node)."""
        for cand in outcome.ranked:
            if not (affinity_ok(cand, req, self.ratios) and anti_affinity_ok(cand, req, self.ratios)):
                continue
            caps = (
                cand.vcpus * self.ratios.cpu,
                cand.ram_mb * self.ratios.ram,
                cand.disk_gb * self.ratios.disk,
            )
            if store.claim(cand.node_id, req.vcpus, req.ram_mb, req.disk_gb, caps):
                self.usage.claimed(cand.node_id, req.vcpus, req.ram_mb, req.disk_gb)
                return cand.node_id  # the caller records it once committed
            self.usage.forget(cand.node_id)  # the copy had it wrong: read it again
        if final:
            self.record("instance", outcome, False)
        raise no_valid_host(outcome, req)
