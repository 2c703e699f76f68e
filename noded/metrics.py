"""The node daemon's Prometheus series, on a CollectorRegistry made in
`kumo-noded run` and handed to what records (the reconcile loop, the image
cache). Guests are read from the hypervisor at scrape time (`GuestCollector`:
one stats call for all guests), as is the image cache's size."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from noded.hypervisor.base import HypervisorDriver

PASS_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class NodeMetrics:
    """The series the node daemon's code records into."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.reconcile_seconds = Histogram(
            "kumo_node_reconcile_duration_seconds",
            "Reconcile passes, every step included.",
            buckets=PASS_BUCKETS,
            registry=registry,
        )
        self.reconcile_passes = Counter(
            "kumo_node_reconcile_passes",
            "Reconcile passes by result (applied, failed, pending).",
            ("result",),
            registry=registry,
        )
        self.step_failures = Counter(
            "kumo_node_reconcile_step_failures",
            "Reconcile steps that raised, by step.",
            ("step",),
            registry=registry,
        )
        self.heartbeat_rtt_seconds = Histogram(
            "kumo_node_heartbeat_rtt_seconds",
            "From sending a heartbeat to the controller's ack.",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=registry,
        )
        self.sessions_opened = Counter(
            "kumo_node_sessions_opened",
            "Sessions opened with the controller (more than one: reconnects).",
            registry=registry,
        )
        self.session_connected = Gauge(
            "kumo_node_session_connected",
            "1 while the session with the controller is open.",
            registry=registry,
        )
        self.image_cache_requests = Counter(
            "kumo_node_image_cache_requests",
            "Image cache look-ups by result (hit: cached already; miss: downloaded).",
            ("result",),
            registry=registry,
        )
        self.image_download_bytes = Counter(
            "kumo_node_image_download_bytes",
            "Image bytes downloaded from the controller into the cache.",
            registry=registry,
        )


class ImageCacheCollector(Collector):
    """The cache directory's size and file count, read at scrape time."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        size = files = 0
        for entry in self.root.iterdir() if self.root.exists() else ():
            if entry.suffix == ".part":
                continue
            try:
                size += entry.stat().st_size
                files += 1
            except FileNotFoundError:
                continue  # pruned while we looked
        yield GaugeMetricFamily("kumo_node_image_cache_bytes", "Bytes of images in the cache.", value=size)
        yield GaugeMetricFamily("kumo_node_image_cache_images", "Images in the cache.", value=files)


class GuestCollector(Collector):
    """Guests by power state, and each running guest's counters (labelled by
    instance id: the one unbounded label, per node)."""

    def __init__(self, driver: HypervisorDriver) -> None:
        self.driver = driver

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        states: dict[str, int] = {}
        for guest in self.driver.list_guests():
            states[guest.power_state.lower()] = states.get(guest.power_state.lower(), 0) + 1
        guests = GaugeMetricFamily(
            "kumo_node_guests", "Guests on this node by power state.", labels=("state",)
        )
        for state, n in sorted(states.items()):
            guests.add_metric((state,), n)
        yield guests
        ids = ("instance_id",)
        cpu = CounterMetricFamily("kumo_guest_cpu_seconds", "CPU time the guest used.", labels=ids)
        mem = GaugeMetricFamily("kumo_guest_memory_bytes", "The guest's resident memory.", labels=ids)
        mem_max = GaugeMetricFamily("kumo_guest_memory_max_bytes", "The guest's memory size.", labels=ids)
        rd = CounterMetricFamily("kumo_guest_disk_read_bytes", "Bytes read from its disks.", labels=ids)
        wr = CounterMetricFamily("kumo_guest_disk_write_bytes", "Bytes written to its disks.", labels=ids)
        rx = CounterMetricFamily("kumo_guest_network_receive_bytes", "Bytes its NICs received.", labels=ids)
        tx = CounterMetricFamily("kumo_guest_network_transmit_bytes", "Bytes its NICs sent.", labels=ids)
        for s in self.driver.guest_stats():
            key = (s.instance_id,)
            cpu.add_metric(key, s.cpu_seconds)
            mem.add_metric(key, s.memory_bytes)
            mem_max.add_metric(key, s.memory_max_bytes)
            rd.add_metric(key, s.disk_read_bytes)
            wr.add_metric(key, s.disk_write_bytes)
            rx.add_metric(key, s.net_rx_bytes)
            tx.add_metric(key, s.net_tx_bytes)
        yield from (cpu, mem, mem_max, rd, wr, rx, tx)
