"""The controller's Prometheus series. One `ControllerMetrics` per controller,
made by the composition root on an explicit CollectorRegistry and handed to
what records (the interceptors, placement, the database's transactions);
counts of things by state are read at scrape time by `StateCollector`, so the
hot path never keeps them."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import peewee
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from controller.db import metrics as store
from controller.db.database import db
from kumo.v1 import compute_pb2, volume_pb2

# RPCs: most answer in milliseconds; image streams and creates can take seconds.
RPC_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120)
DB_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)


class ControllerMetrics:
    """The series the controller's code records into."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._rpc_children: dict[tuple[str, str], tuple[Any, Any]] = {}
        self.rpcs = Counter(
            "kumo_rpc_requests",
            "RPCs answered, by full method name and gRPC status code.",
            ("method", "code"),
            registry=registry,
        )
        self.rpc_seconds = Histogram(
            "kumo_rpc_duration_seconds",
            "How long RPCs took (for streams: until the handler returned its stream).",
            ("method",),
            buckets=RPC_BUCKETS,
            registry=registry,
        )
        self.placements = Counter(
            "kumo_placements",
            "Resources placed on a node, by kind (instance, volume).",
            ("kind",),
            registry=registry,
        )
        self.scheduling_seconds = Histogram(
            "kumo_scheduling_duration_seconds",
            "From ranking nodes to the claim committed or refused, by kind.",
            ("kind",),
            buckets=DB_BUCKETS,
            registry=registry,
        )
        self.no_valid_host = Counter(
            "kumo_no_valid_host",
            "Placements refused for want of a node, by the filter that rejected the most nodes.",
            ("kind", "filter"),
            registry=registry,
        )
        self.transaction_seconds = Histogram(
            "kumo_db_write_transaction_duration_seconds",
            "Write transactions, from asking for the lock to commit or rollback.",
            buckets=DB_BUCKETS,
            registry=registry,
        )
        self.lock_wait_seconds = Histogram(
            "kumo_db_write_lock_wait_seconds",
            "How long write transactions waited for the write lock (SQLite: the "
            "controller's writer lock and BEGIN IMMEDIATE; PostgreSQL: BEGIN).",
            buckets=DB_BUCKETS,
            registry=registry,
        )

    def observe_write(self, lock_wait: float, total: float) -> None:
        self.lock_wait_seconds.observe(lock_wait)
        self.transaction_seconds.observe(total)

    def observe_rpc(self, method: str, code: str, seconds: float) -> None:
        # The labelled children, looked up once per (method, code): labels() takes a lock and hashes.
        children = self._rpc_children.get((method, code))
        if children is None:
            children = (self.rpcs.labels(method, code), self.rpc_seconds.labels(method))
            self._rpc_children[(method, code)] = children  # a racing twin stores the same children
        children[0].inc()
        children[1].observe(seconds)


def _state_name(enum: Any, prefix: str, value: int) -> str:
    try:
        return enum.Name(value).removeprefix(prefix).lower()
    except ValueError:
        return str(value)


class StateCollector(Collector):
    """Counts at scrape time: nodes (the live registry's view, and the
    disabled ones), node sessions and heartbeat age, and instances, volumes
    and ports by state with one GROUP BY each, on this controller's database
    (the scrape thread is bound to it for the call)."""

    def __init__(self, database: peewee.Database, live: Callable[[], list[tuple[str, bool, float]]]) -> None:
        self.database = database
        # (status, has a session, seconds since its last heartbeat) per known node
        self.live = live

    def describe(self) -> list[Any]:
        return []  # counted at scrape time only: nothing to read at registration

    def collect(self) -> Iterator[GaugeMetricFamily]:
        db.bind_thread(self.database)
        try:
            yield from self._collect()
        finally:
            # Each scrape runs on a thread of its own: close the connection it opened.
            if not self.database.is_closed():
                self.database.close()

    def _collect(self) -> Iterator[GaugeMetricFamily]:
        nodes = self.live()
        by_status = GaugeMetricFamily("kumo_nodes", "Known nodes by liveness state.", labels=("state",))
        statuses = {"ready": 0, "down": 0}
        for status, _, _ in nodes:
            statuses[status.lower()] = statuses.get(status.lower(), 0) + 1
        for status, n in sorted(statuses.items()):
            by_status.add_metric((status,), n)
        yield by_status
        yield GaugeMetricFamily(
            "kumo_nodes_disabled",
            "Nodes an admin disabled (no new placements).",
            value=store.disabled_nodes(),
        )
        yield GaugeMetricFamily(
            "kumo_node_sessions", "Open node sessions.", value=sum(1 for _, s, _ in nodes if s)
        )
        ages = [age for _, s, age in nodes if s]
        yield GaugeMetricFamily(
            "kumo_node_heartbeat_age_max_seconds",
            "Seconds since the stalest connected node's last heartbeat (0: none connected).",
            value=max(ages, default=0.0),
        )
        started = time.perf_counter()
        instances = GaugeMetricFamily("kumo_instances", "Instances by state.", labels=("state",))
        for state, n in sorted(store.instances_by_state().items()):
            instances.add_metric((_state_name(compute_pb2.InstanceState, "INSTANCE_STATE_", state),), n)
        yield instances
        volumes = GaugeMetricFamily("kumo_volumes", "Volumes by state.", labels=("state",))
        for state, n in sorted(store.volumes_by_state().items()):
            volumes.add_metric((_state_name(volume_pb2.VolumeState, "VOLUME_STATE_", state),), n)
        yield volumes
        ports = GaugeMetricFamily("kumo_ports", "Ports, bound to an instance or not.", labels=("state",))
        binding = store.ports_by_binding()
        for bound, label in ((True, "bound"), (False, "unbound")):
            ports.add_metric((label,), binding.get(bound, 0))
        yield ports
        yield GaugeMetricFamily(
            "kumo_metrics_state_query_seconds",
            "How long this scrape's state counts took.",
            value=time.perf_counter() - started,
        )
