"""Simulated nodes in this process, for the evacuation tests and benchmark:
each is the real agent (noded/agent.py) with the fake hypervisor driver and
the real volumes and instances steps, on one asyncio loop in a thread of its
own, so twenty nodes cost one process. A node "dies" when its agent stops
(its driver keeps the guests it ran, as a host that lost its network does)
and "returns" with a new agent on the same driver. bench never imports tests/."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from noded.agent import Agent
from noded.compute.step import ComputeStep
from noded.enroll import join
from noded.hypervisor.fake import FakeDriver
from noded.state import Credentials
from noded.storage import VolumeStep, make_backend


@dataclass
class SimNode:
    name: str
    creds: Credentials
    driver: FakeDriver
    steps: list[Any]
    backends: tuple[str, ...]
    agent: Agent | None = None
    task: Any = None  # the agent's run(), a concurrent future

    @property
    def node_id(self) -> str:
        return self.creds.identity.node_id

    def guests(self) -> set[str]:
        return {g.instance_id for g in self.driver.list_guests()}


@dataclass
class Fleet:
    """`nodes` simulated hosts of `vcpus`, `memory_mb`, `disk_gb` each; with
    `shared_dir` every one also has the shared-fs backend on that directory."""

    base: Path
    vcpus: int = 4
    memory_mb: int = 8192
    disk_gb: int = 100
    shared_dir: Path | None = None
    heartbeat_seconds: float = 1.0
    nodes: dict[str, SimNode] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="sim-fleet", daemon=True)
        self._thread.start()

    def add(
        self, endpoint: str, token: str, count: int, prefix: str = "sim", vcpus: int = 0, memory_mb: int = 0
    ) -> list[SimNode]:
        """Enrolls `count` nodes with `token` (enough uses) and starts them;
        `vcpus` and `memory_mb` (when given) instead of the fleet's."""
        start = len(self.nodes)
        names = [f"{prefix}{i}" for i in range(start, start + count)]
        with ThreadPoolExecutor(4) as pool:
            creds = list(pool.map(lambda n: join(endpoint, token, n), names))
        out = []
        for name, c in zip(names, creds, strict=True):
            driver = FakeDriver(
                hostname=name,
                vcpus=vcpus or self.vcpus,
                memory_mb=memory_mb or self.memory_mb,
                disk_gb=self.disk_gb,
            )
            root = self.base / name
            backend = make_backend(driver, root / "volumes", None, self.shared_dir)
            compute = ComputeStep(root / "instances", None, None, None, backend)
            volumes = VolumeStep(backend, None)
            node = SimNode(name, c, driver, [volumes, compute], tuple(backend.names()))
            self.nodes[node.node_id] = node
            self.start(node.node_id)
            out.append(node)
        return out

    def start(self, node_id: str) -> None:
        """Runs (or runs again) the node's agent on its driver."""
        node = self.nodes[node_id]
        volumes, compute = node.steps
        node.agent = Agent(
            node.creds,
            node.driver,
            None,
            self.heartbeat_seconds,
            reconcile_seconds=30.0,
            steps=list(node.steps),
            guest_reporter=compute.report_guests,
            volume_reporter=volumes.report,
            storage_backends=node.backends,
        )
        node.task = asyncio.run_coroutine_threadsafe(node.agent.run(), self.loop)

    def kill(self, node_id: str) -> None:
        """The node's daemon stops (the host is lost); its driver keeps its guests."""
        node = self.nodes[node_id]
        if node.agent is not None:
            self.loop.call_soon_threadsafe(node.agent.stop)
            node.task.result(30)
            node.agent = None

    def stop(self) -> None:
        for node_id in list(self.nodes):
            self.kill(node_id)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
