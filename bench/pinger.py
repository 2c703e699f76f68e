"""How long a guest did not answer ping: `ping -D` every 50 ms from one or
more network namespaces at once, the replies' wall-clock times read from its
output, and the longest gap between them over a window (a live migration's
switch-over, seen from the network)."""

from __future__ import annotations

import itertools
import re
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPLY = re.compile(r"^\[(\d+\.\d+)\] \d+ bytes from ")


@dataclass
class Pinger:
    """`ping -i interval` to `address` from each of `namespaces` at once (a
    host's namespace pings from its bridge: the guest's gateway there). The
    guest answers at a moment when any of them got a reply. A ping that
    exits (no route yet: the destination's network is made for the incoming
    guest) is started again."""

    address: str
    namespaces: list[str]
    files: Path
    interval: float = 0.05
    threads: list[threading.Thread] = field(default_factory=list)
    current: dict[int, subprocess.Popen] = field(default_factory=dict)
    stopping: threading.Event = field(default_factory=threading.Event)

    def _path(self, i: int) -> Path:
        return self.files / f"ping-{i}.txt"

    def _run(self, i: int, netns: str) -> None:
        cmd = [
            "ip",
            "netns",
            "exec",
            netns,
            "stdbuf",
            "-oL",
            "ping",
            "-D",
            "-n",
            "-i",
            str(self.interval),
            "-W",
            "1",
        ]
        while not self.stopping.is_set():
            with open(self._path(i), "a") as out:
                self.current[i] = subprocess.Popen([*cmd, self.address], stdout=out, stderr=subprocess.STDOUT)
            self.current[i].wait()
            self.stopping.wait(self.interval)

    def start(self) -> Pinger:
        for i, netns in enumerate(self.namespaces):
            t = threading.Thread(target=self._run, args=(i, netns), name=f"pinger-{netns}", daemon=True)
            t.start()
            self.threads.append(t)
        return self

    def replies(self) -> list[float]:
        """The (wall clock) times of every reply so far, sorted."""
        times = []
        for i in range(len(self.namespaces)):
            path = self._path(i)
            for line in path.read_text(errors="replace").splitlines() if path.exists() else []:
                if m := REPLY.match(line):
                    times.append(float(m.group(1)))
        return sorted(times)

    def answered_since(self, t: float) -> bool:
        return any(r > t for r in self.replies())

    def stop(self) -> None:
        """Ends every ping (SIGINT: ping writes out what it has), also one a
        thread started just as the stop came."""
        self.stopping.set()
        deadline = time.monotonic() + 15
        while any(t.is_alive() for t in self.threads) and time.monotonic() < deadline:
            for p in list(self.current.values()):
                if p.poll() is None:
                    p.send_signal(signal.SIGINT)
            for t in self.threads:
                t.join(0.2)


def downtime(replies: list[float], since: float, until: float) -> float:
    """The longest time without a reply between `since` and `until` (wall clock, s)."""
    inside = [since, *[r for r in replies if since < r < until], until]
    return max(b - a for a, b in itertools.pairwise(inside))
