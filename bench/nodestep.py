"""A long-lived network step inside a namespace, for the floating IP
benchmark: `ip netns exec NS python -m bench.nodestep STATE_DIR PHYSNETS_JSON`
reads commands on stdin, one a line, and answers one JSON line each:
`apply <desired.bin>` (one pass of the step: its seconds), `nft` (applying
the last rendered ruleset again: its seconds, and its rules), `quit`. One
process for the whole run, so the figures hold no interpreter start-up. Not
a benchmark itself (the runner only picks up *_bench modules)."""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

from kumo.v1 import node_agent_pb2 as pb
from noded.network import NetworkStep, firewall


def rule_count(script: str) -> int:
    """Rules in a rendered script: the lines that are not table or chain
    structure, hook declarations or closing braces."""
    skip = ("table ", "delete table ", "chain ", "type ", "}")
    return sum(1 for line in script.splitlines() if line.strip() and not line.strip().startswith(skip))


def main() -> None:
    logging.disable(logging.CRITICAL)
    step = NetworkStep(Path(sys.argv[1]), "", (), json.loads(sys.argv[2]))
    for line in sys.stdin:
        cmd, _, arg = line.strip().partition(" ")
        if cmd == "quit":
            return
        t = time.perf_counter()
        if cmd == "apply":
            step(pb.NodeDesiredState.FromString(Path(arg).read_bytes()))
            out = {"seconds": time.perf_counter() - t}
        elif cmd == "nft":
            script = step._fw_applied
            firewall.apply(script)
            out = {"seconds": time.perf_counter() - t, "rules": rule_count(script), "bytes": len(script)}
        else:
            out = {"error": f"unknown command {cmd!r}"}
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
