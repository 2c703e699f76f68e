"""The contributors to a node's desired state. (Deltas, diff and apply are in
kumo.desired: kumo-noded applies them too.)"""

from __future__ import annotations

from collections.abc import Callable

from kumo.v1 import node_pb2 as pb

# Features that place resources on nodes append a function that fills their
# part of a node's desired state: fn(node_row, state). It runs inside the read
# transaction that also reads the node's revision.
CONTRIBUTORS: list[Callable[[object, pb.NodeDesiredState], None]] = []
