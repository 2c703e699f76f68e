"""How the registry's event loop is doing: heartbeat handler times, loop lag
and garbage-collection pauses for the periodic log line (and the fleet
benchmark), and the gc freezing that keeps those pauses short."""

from __future__ import annotations

import asyncio
import gc
import time


class Stats:
    """Heartbeat figures for the periodic log line (and the fleet benchmark)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.count = 0
        self.started = time.monotonic()
        self.samples: list[float] = []
        self.lags: list[float] = []
        # (wall seconds, this thread's CPU seconds, generation) per collection.
        self.gc_pauses: list[tuple[float, float, int]] = getattr(self, "gc_pauses", [])
        self._gc_start = 0.0
        self._gc_cpu_start = 0.0

    def on_gc(self, phase: str, info: dict[str, int]) -> None:
        """Wall time and CPU time apart: a pause much longer in wall time
        than in CPU time is the thread waiting for a core (or the GIL, which
        finalizers run during a collection may hand over), not collecting."""
        if phase == "start":
            self._gc_start = time.perf_counter()
            self._gc_cpu_start = time.thread_time()
        elif self._gc_start:
            self.gc_pauses.append(
                (
                    time.perf_counter() - self._gc_start,
                    time.thread_time() - self._gc_cpu_start,
                    info.get("generation", 0),
                )
            )

    def add(self, seconds: float) -> None:
        self.count += 1
        if len(self.samples) < 200_000:
            self.samples.append(seconds)

    def summary(self) -> dict[str, float]:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        s = sorted(self.samples)

        def pct(p: float) -> float:
            return round(s[min(len(s) - 1, int(p * len(s)))] * 1e6, 1) if s else 0.0

        lags = sorted(self.lags)
        pauses, self.gc_pauses = self.gc_pauses, []
        worst = max(pauses, default=(0.0, 0.0, 0))
        return {
            "gc_max_ms": round(worst[0] * 1e3, 1),
            "gc_max_cpu_ms": round(worst[1] * 1e3, 1),
            "gc_max_generation": worst[2],
            "gc_count": len(pauses),
            "gc_cpu_ms": round(sum(p[1] for p in pauses) * 1e3, 1),
            "loop_lag_p99_ms": round(lags[int(0.99 * (len(lags) - 1))] * 1e3, 1) if lags else 0.0,
            "loop_lag_max_ms": round(lags[-1] * 1e3, 1) if lags else 0.0,
            "heartbeats": self.count,
            "per_second": round(self.count / elapsed, 1),
            "handler_p50_us": pct(0.50),
            "handler_p99_us": pct(0.99),
            "handler_max_us": round(s[-1] * 1e6, 1) if s else 0.0,
        }


async def gc_keeper(every: float = 5.0, thaw_every: float = 3600.0) -> None:
    """Thousands of sessions are many long-lived objects, and a full garbage
    collection rescans them all: pauses of hundreds of milliseconds on the
    loop every session waits on (measured with 5,000 nodes). So what has
    survived a few seconds is frozen (gc.freeze, O(1)) and full collections
    skip it; once an hour everything is thawed and collected, so reference
    cycles that died while frozen are reclaimed after all."""
    last_thaw = time.monotonic()
    while True:
        await asyncio.sleep(every)
        if time.monotonic() - last_thaw >= thaw_every:
            gc.unfreeze()
            gc.collect()
            last_thaw = time.monotonic()
        gc.freeze()


async def lag_probe(stats: Stats) -> None:
    """How late the event loop runs a timer: what every session waits on top of its own work."""
    while True:
        start = time.monotonic()
        await asyncio.sleep(0.05)
        stats.lags.append(max(0.0, time.monotonic() - start - 0.05))
