"""Waits for end-to-end tests that must hold on a loaded 2-core CI machine.

A guest boot under TCG is CPU-bound: on a quiet machine the tiny test guest
reaches userspace in about 2.5 s, but with the load average at 3.5 per core
it gets a fraction of that CPU and everything around it (libvirt, noded,
the controller) slows down too. A fixed timeout either fails under load or
waits needlessly long when a test is really broken. So every guest boot,
console and state wait in tests/ goes through `wait_until`, whose budget is
a quiet-machine figure that stretches while the machine is busy
(`LoadScaledDeadline`), and whose failure says what the guest and its node
were doing (`diagnose`).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import grpc

from kumo.v1 import compute_pb2 as cpb
from kumo.v1 import compute_pb2_grpc, node_pb2_grpc
from kumo.v1 import node_pb2 as npb

# Measured: the test guest reaches userspace this fast under TCG when the
# machine is quiet. The budgets below are many of these on purpose (image
# fetch, define, firmware, a reboot's ACPI path); a wait that times out on
# a quiet machine is a bug, not a slow boot.
QUIET_BOOT_SECONDS = 2.5
# A boot or console wait's budget on a quiet machine: what the tests always
# allowed (48 quiet boots).
BOOT_SECONDS = 120.0
# However busy the machine, a wait gives up after this long (pytest-timeout's
# 600 s per test stays the outer bound).
MAX_WAIT_SECONDS = 540.0


def load_factor(load1: float, cpus: int) -> float:
    """How many times slower than quiet the machine runs: runnable tasks per
    core (the 1-minute load average over the CPU count), never below 1."""
    return max(1.0, load1 / max(1, cpus))


def scaled_timeout(base: float, load1: float, cpus: int, cap: float = MAX_WAIT_SECONDS) -> float:
    """A wait of `base` quiet seconds at a steady load: stretched by the load
    factor, at most `cap`."""
    return min(cap, base * load_factor(load1, cpus))


def machine_load() -> tuple[float, int]:
    """(1-minute load average, CPU count) of this machine now."""
    return os.getloadavg()[0], os.cpu_count() or 1


def load_line() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


class LoadScaledDeadline:
    """A deadline of `base` quiet seconds that extends while the machine is busy.

    Each check re-reads the load: the time since the previous check counts
    as 1/load_factor of a quiet second, so a wait gets `base` seconds' worth
    of the machine, whether the load is steady (`scaled_timeout`) or rises
    and falls while waiting; never longer than `cap` seconds of wall time.
    Clock and load are parameters so the arithmetic is unit-testable.
    """

    def __init__(
        self,
        base: float,
        cap: float = MAX_WAIT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        load: Callable[[], tuple[float, int]] = machine_load,
    ) -> None:
        self.base, self.cap = base, cap
        self._clock, self._load = clock, load
        self.start = self._last = clock()
        self.used = 0.0  # quiet seconds spent
        self.peak_factor = 1.0

    @property
    def elapsed(self) -> float:
        return self._last - self.start

    def expired(self) -> bool:
        now = self._clock()
        factor = load_factor(*self._load())
        self.peak_factor = max(self.peak_factor, factor)
        self.used += (now - self._last) / factor
        self._last = now
        return self.used >= self.base or self.elapsed >= self.cap


def wait_until(
    pred: Callable[[], Any],
    what: str,
    base: float = BOOT_SECONDS,
    step: float = 0.5,
    explain: Callable[[], str] | None = None,
) -> Any:
    """Polls `pred` until it returns something true (returned) within a
    load-scaled deadline of `base` quiet seconds. On timeout the assertion
    names what it waited for, how long and at what load, and `explain()`'s
    account of the guest and node (the load average alone without one)."""
    deadline = LoadScaledDeadline(base)
    while True:
        value = pred()
        if value:
            return value
        if deadline.expired():
            head = (
                f"timed out after {deadline.elapsed:.0f} s waiting for {what} (budget {base:g} quiet s, "
                f"load factor up to {deadline.peak_factor:.1f})"
            )
            raise AssertionError(f"{head}\n{_safely(explain) if explain else load_line()}")
        time.sleep(step)


def instance_gone(client: Stubs, instance_id: str) -> bool:
    """The instance is NOT_FOUND (deleted, its claim freed); any other error is raised."""
    try:
        client.stub(compute_pb2_grpc.ComputeServiceStub).GetInstance(cpb.GetInstanceRequest(id=instance_id))
    except grpc.RpcError as exc:
        if exc.code() == grpc.StatusCode.NOT_FOUND:
            return True
        raise
    return False


def wait_gone(client: Stubs, instance_id: str, base: float = 90) -> None:
    """Waits, load-scaled, for a deleted guest to be gone from its node and the controller."""
    wait_until(
        lambda: instance_gone(client, instance_id),
        what=f"{instance_id} deleted",
        base=base,
        step=0.1,
        explain=lambda: diagnose(client, instance_id),
    )


def _safely(fn: Callable[[], str]) -> str:
    """A diagnosis must never hide the failure it explains."""
    try:
        return fn()
    except Exception as exc:  # anything: reported instead
        return f"(diagnosis failed: {exc!r})\n{load_line()}"


# What went wrong: one account of a guest and its node


class Stubs(Protocol):
    """A client that makes stubs carrying its token (tests.harness.Client)."""

    def stub(self, cls: Any) -> Any: ...


def _virsh(*args: str) -> str:
    """virsh's output, or its error (for a report: cloudutil.virsh is for checks)."""
    try:
        out = subprocess.run(
            ["virsh", "-c", "qemu:///system", *args], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"(virsh {' '.join(args)}: {exc})"
    return (out.stdout or out.stderr).strip()


def _ago(ts: Any) -> str:
    if not ts.seconds:
        return "never"
    when = ts.ToDatetime(tzinfo=UTC)
    return f"{(datetime.now(UTC) - when).total_seconds():.1f} s ago ({when:%H:%M:%S})"


def _call(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except grpc.RpcError as exc:
        return f"({exc.code().name}: {exc.details()})"


def console_tail(text: str, lines: int = 25) -> str:
    """The console's kumo reports (the test image's markers) and its last lines."""
    all_lines = text.splitlines()
    kumo = [ln for ln in all_lines if "KUMO" in ln or ln.startswith(("instance-id", "hostname"))]
    return (
        "the console's kumo lines:\n"
        + "\n".join(kumo[-60:])
        + f"\nthe console's last {lines} lines:\n"
        + "\n".join(all_lines[-lines:])
    )


def diagnose(
    client: Stubs | None = None,
    instance_id: str = "",
    console: str | None = None,
    domain: str = "",
) -> str:
    """What the guest and its node were doing, for a timed-out wait's message:
    the instance's state, task and fault and its node's state, desired and
    applied revision and last heartbeat (through the API when there is a
    `client`), libvirt's view of the guest, the load average, and the last
    lines of the console (`console`, or the API's)."""
    parts = []
    domain = domain or (f"kumo-{instance_id}" if instance_id else "")
    if client is not None and instance_id:
        compute = client.stub(compute_pb2_grpc.ComputeServiceStub)
        inst = _call(lambda: compute.GetInstance(cpb.GetInstanceRequest(id=instance_id)))
        if isinstance(inst, str):
            parts.append(f"instance {instance_id}: {inst}")
        else:
            parts.append(
                f"instance {instance_id}: state {cpb.InstanceState.Name(inst.state)}, "
                f"task {inst.task!r}, fault {inst.fault!r}, node {inst.node_id or '-'}"
            )
            if inst.node_id:
                parts.append(node_line(client, inst.node_id))
        if console is None:
            console = _call(
                lambda: compute.GetConsoleOutput(cpb.GetConsoleOutputRequest(id=instance_id)).output
            )
    if domain:
        parts.append(f"virsh domstate {domain}: {_virsh('domstate', domain, '--reason')}")
    parts.append("virsh list --all:\n" + _virsh("list", "--all"))
    parts.append(load_line())
    if console is not None:
        parts.append(console_tail(console))
    return "\n".join(parts)


def node_line(client: Stubs, node_id: str) -> str:
    """A node's state, session, revisions and last heartbeat, on one line."""
    nodes = client.stub(node_pb2_grpc.NodeServiceStub)
    node = _call(lambda: nodes.GetNode(npb.GetNodeRequest(id=node_id)))
    if isinstance(node, str):
        return f"node {node_id}: {node}"
    return (
        f"node {node.name} ({node_id}): state {npb.NodeState.Name(node.state)}, connected {node.connected}, "
        f"desired revision {node.desired_revision}, applied {node.applied_revision}, "
        f"last heartbeat {_ago(node.last_heartbeat_time)}"
    )


# "Nothing happened": first make sure the node has had its chance


def desired_writes(state_dir: Path) -> tuple[int, int] | None:
    """Which write of the node's desired.json is on disk (inode, mtime):
    noded's reconcile loop rewrites it at the start of every pass."""
    try:
        st = (state_dir / "desired.json").stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns


def wait_reconciled(client: Stubs, node_id: str, state_dir: Path, base: float = 60.0) -> None:
    """Waits until a reconnected node is up to date and has finished a whole
    reconcile pass since this call, so a check that nothing changed proves
    something. The node's applied revision must reach the desired one; but
    a restarted node reports its old applied revision in its hello, so that
    alone would hold before it reconciled anything: also two passes must
    start (the first one has then finished; passes never overlap)."""
    nodes = client.stub(node_pb2_grpc.NodeServiceStub)
    before = desired_writes(state_dir)
    seen: set[tuple[int, int]] = set()

    def done() -> bool:
        write = desired_writes(state_dir)
        if write is not None and write != before:
            seen.add(write)
        node = nodes.GetNode(npb.GetNodeRequest(id=node_id))
        current = (
            node.state == npb.NODE_STATE_READY
            and node.connected
            and node.applied_revision == node.desired_revision
        )
        return current and len(seen) >= 2

    wait_until(
        done,
        what=f"node {node_id} at its desired revision, a reconcile pass done",
        base=base,
        step=0.2,
        explain=lambda: f"{node_line(client, node_id)}; passes started since: {len(seen)}\n{load_line()}",
    )
