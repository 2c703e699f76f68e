"""The reconcile loop: make the host match the desired state.

Level-triggered, as kubelet and Nomad clients do it: each pass compares the
whole desired state with what the host has and fixes the difference, so after
a crash, a reconnect or a missed message the next pass simply does the right
thing, and nothing is applied twice. A pass runs when the desired state
changes and every `period` seconds anyway.

Each feature adds a step: fn(desired, driver) that brings its part of the host
in line (instances, images, disks, networks, volumes). A step raises to report
a failure; the others still run, and the pass is retried next time. A step
whose change is under way (a guest releasing a disk) raises Pending: not a
failure, but the pass is not done, and runs again in PENDING_RETRY s."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from google.protobuf.json_format import MessageToDict

from kumo.v1 import node_agent_pb2 as pb
from noded.hypervisor.base import HypervisorDriver
from noded.metrics import NodeMetrics
from noded.state import StateDir

log = logging.getLogger("kumo.noded.reconcile")

Step = Callable[[pb.NodeDesiredState, HypervisorDriver], None]

PENDING_RETRY = 1.0


class Pending(Exception):
    """A change the host is still making; the step wants another pass soon.
    `fault`: what to report on the resource meanwhile, when the wait looks
    stuck and a person may have to act."""

    def __init__(self, message: str, fault: str = "") -> None:
        super().__init__(message)
        self.fault = fault


@dataclass
class PassResult:
    revision: int
    error: str
    pending: str = ""


def record_desired(state_dir: StateDir | None) -> Step:
    """Keeps the last desired state on disk, for `kumo-noded status` and for
    knowing what to keep running while the controller is away."""

    def step(desired: pb.NodeDesiredState, _driver: HypervisorDriver) -> None:
        if state_dir is not None:
            state_dir.save_desired(Reconciler.current_revision, MessageToDict(desired))

    return step


class Reconciler:
    current_revision = 0  # set for the duration of a pass (steps may read it)

    def __init__(
        self,
        driver: HypervisorDriver,
        steps: list[Step],
        period: float = 30.0,
        on_applied: Callable[[PassResult], Awaitable[None]] | None = None,
        metrics: NodeMetrics | None = None,
    ) -> None:
        self.metrics = metrics
        self.driver = driver
        self.steps = steps
        self.period = period
        self.on_applied = on_applied
        self.desired: pb.NodeDesiredState | None = None
        self.revision = 0
        self.applied_revision = 0
        self._wake = asyncio.Event()

    def set_desired(self, state: pb.NodeDesiredState, revision: int) -> None:
        self.desired, self.revision = state, revision
        self._wake.set()

    def forget_desired(self) -> None:
        """No more passes until a session gives a desired state again (a
        fenced node must not restart guests that may run elsewhere now)."""
        self.desired = None

    def _pass(self, desired: pb.NodeDesiredState, revision: int) -> tuple[str, str]:
        errors, pending = [], []
        Reconciler.current_revision = revision
        start = time.perf_counter()
        for step in self.steps:
            name = getattr(step, "__name__", type(step).__name__)
            try:
                step(desired, self.driver)
            except Pending as exc:
                pending.append(f"{name}: {exc}")
            except Exception as exc:  # a step's failure must not stop the others
                log.warning("reconcile step failed", extra={"step": name, "error": str(exc)})
                errors.append(f"{name}: {exc}")
                if self.metrics is not None:
                    self.metrics.step_failures.labels(name).inc()
        if self.metrics is not None:
            self.metrics.reconcile_seconds.observe(time.perf_counter() - start)
            result = "failed" if errors else "pending" if pending else "applied"
            self.metrics.reconcile_passes.labels(result).inc()
        return "; ".join(errors), "; ".join(pending)

    async def run_once(self) -> PassResult | None:
        if self.desired is None:
            return None
        desired, revision = self.desired, self.revision
        if self.driver.blocking:
            error, pending = await asyncio.get_running_loop().run_in_executor(
                None, self._pass, desired, revision
            )
        else:
            error, pending = self._pass(desired, revision)
        result = PassResult(revision, error, pending)
        if pending and not error:
            return result  # not applied yet, not failed: acked when done
        if not error:
            self.applied_revision = revision
        if self.on_applied is not None:
            await self.on_applied(result)
        return result

    async def run(self) -> None:
        # A failed pass is retried soon (1 s, doubling up to `period`): often
        # one step waits on another (a volume is deleted once the instances
        # step has removed its guest), and nothing else would wake us.
        wait, retry = self.period, 1.0
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), wait)
            except TimeoutError:
                pass
            self._wake.clear()
            result = await self.run_once()
            if result is not None and result.error:
                wait, retry = min(self.period, retry), min(self.period, retry * 2)
            elif result is not None and result.pending:
                wait, retry = min(self.period, PENDING_RETRY), 1.0
            else:
                wait, retry = self.period, 1.0
