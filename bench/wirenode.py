"""A simulated node at the wire, for the fleet benchmark: the session
protocol as kumo-noded speaks it (one mTLS channel and one Session stream per
node; a hello with the fake driver's inventory, heartbeats with its usage and
guests at the interval the controller's welcome gives, an ack of every
desired state), without the agent's reconciler and its worker-thread hop per
heartbeat. The real agents cost their processes over 1 ms of CPU a heartbeat
(measured: four processes of about 650 agents each took 19% of a core at 520
heartbeats/s), so 10,000 of them at 5 s would want more than the two cores
the controller shares with them; the controller, which is what the benchmark
measures, sees the same messages from these. Not a benchmark itself."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import Any

import grpc

from kumo.v1 import node_agent_pb2 as pb
from kumo.v1 import node_agent_pb2_grpc
from noded.agent import CHANNEL_OPTIONS, WELCOME_TIMEOUT, guest_pb, inventory_pb, usage_pb
from noded.hypervisor.fake import FakeDriver
from noded.state import Credentials


class WireNode:
    """One node: `run()` holds its session (reconnecting with backoff) until `stop()`."""

    def __init__(self, creds: Credentials, driver: FakeDriver, on_rtt: Callable[[float], None]) -> None:
        self.creds = creds
        self.driver = driver
        self.on_rtt = on_rtt
        self.connected = asyncio.Event()
        self.sessions = 0
        self.revision = 0
        # Why sessions ended: "stage code" (stage: before the welcome, or after it) -> count,
        # and one sample of each's details, so the bench can say where failures come from.
        self.errors: dict[str, int] = {}
        self.error_details: dict[str, str] = {}
        self._stage = "open"
        self._started = time.monotonic()
        self._stopping = asyncio.Event()
        self._sent: dict[int, float] = {}

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        backoff = 1.0
        while not self._stopping.is_set():
            try:
                await self._session()
                backoff = 1.0
            except asyncio.CancelledError:
                raise
            except grpc.aio.AioRpcError as exc:  # the stream broke or the controller refused
                self._count(exc.code().name, f"{exc.details()} {exc.debug_error_string()}")
            except Exception as exc:  # no welcome in time, the stream ended
                self._count(type(exc).__name__, str(exc))
            finally:
                self.connected.clear()
            if self._stopping.is_set():
                return
            # Jittered backoff, as the agent's: a fleet that lost its controller does not come back in step.
            await asyncio.sleep(random.uniform(0.5, 1.0) * backoff)
            backoff = min(backoff * 2, 30.0)

    def _count(self, why: str, details: str) -> None:
        took = time.monotonic() - self._started
        after = next((f"<{b}s" for b in (1, 5, 15, 30, 60) if took < b), ">60s")
        key = f"{self._stage} {why} {after}"
        self.errors[key] = self.errors.get(key, 0) + 1
        self.error_details.setdefault(key, details[:200])

    async def _session(self) -> None:
        self._stage = "open"
        self._started = time.monotonic()
        c = self.creds
        creds = grpc.ssl_channel_credentials(c.ca_pem, c.key_pem, c.cert_pem)
        async with grpc.aio.secure_channel(
            c.identity.node_endpoint, creds, options=CHANNEL_OPTIONS
        ) as channel:
            call = node_agent_pb2_grpc.NodeAgentServiceStub(channel).Session()
            hello = pb.NodeHello(
                inventory=inventory_pb(self.driver.host_facts()), applied_revision=self.revision
            )
            await call.write(pb.SessionRequest(hello=hello))
            first = await asyncio.wait_for(call.read(), WELCOME_TIMEOUT)
            if first is grpc.aio.EOF or first.WhichOneof("kind") != "welcome":
                raise ConnectionError("the controller did not welcome the session")
            interval = first.welcome.heartbeat_interval.ToTimedelta().total_seconds() or 5.0
            self.sessions += 1
            self._stage = "session"
            self.connected.set()
            lock = asyncio.Lock()  # one write at a time on the stream
            tasks = {
                asyncio.create_task(self._beats(call, lock, interval)),
                asyncio.create_task(self._reads(call, lock)),
                asyncio.create_task(self._stopping.wait()),
            }
            try:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                call.cancel()

    async def _beats(self, call: Any, lock: asyncio.Lock, interval: float) -> None:
        self._sent = {}
        await asyncio.sleep(random.uniform(0, interval))  # a fleet spreads over the interval
        # Nothing changes this node's guests (it applies no desired state), so its report is
        # built once per session and only the sequence number moves: the controller gets the
        # same bytes the agent would send, without the load generator rebuilding them each beat.
        guests = self.driver.list_guests()
        report = pb.SessionRequest(
            heartbeat=pb.Heartbeat(
                usage=usage_pb(self.driver.usage(), guests), guests=[guest_pb(g) for g in guests]
            )
        )
        seq = 0
        while True:
            seq += 1
            report.heartbeat.seq = seq
            self._sent[seq] = time.perf_counter()
            async with lock:
                await call.write(report)  # serialized before write returns: safe to change after
            await asyncio.sleep(interval)

    async def _reads(self, call: Any, lock: asyncio.Lock) -> None:
        while True:
            msg = await call.read()
            if msg is grpc.aio.EOF:
                raise ConnectionError("the controller ended the session")
            kind = msg.WhichOneof("kind")
            if kind == "heartbeat_ack":
                sent = self._sent.pop(msg.heartbeat_ack.seq, None)
                if sent is not None:
                    self.on_rtt(time.perf_counter() - sent)
            elif kind == "desired_state":
                self.revision = msg.desired_state.revision
                async with lock:
                    await call.write(pb.SessionRequest(ack=pb.DesiredStateAck(revision=self.revision)))
