"""Node liveness and sessions, kept in memory on the node server's event loop.

A heartbeat touches memory only: the node's last-seen time, usage and guests.
What must outlive the process goes to the database in batches from here: state
changes (READY/DOWN), inventory, applied revisions at once (within a flush
tick), last-heartbeat time and usage every `heartbeat_flush_seconds`. A
monitor task marks nodes DOWN when no heartbeat came within the grace period.

Threading: everything that changes this state runs on the event loop thread.
Other threads (the admin API, enrollment) call the `*_threadsafe` methods,
which hand the work to the loop; readers (`snapshot`) get a consistent copy
taken under a lock.

The parts, each a module here: `live` (a node's session, liveness and the
readers' copy; tunnel addresses), `registry` (`NodeRegistry`: sessions,
heartbeats, thread-safe calls, the DOWN monitor), `writer` (the batched
database writes), `loopstats` (loop lag, handler times, gc pauses)."""

from controller.domain.node_registry.live import (
    DOWN,
    READY,
    RESYNC,
    LiveView,
    Session,
    tunnel_host,
    tunnel_ip,
)
from controller.domain.node_registry.registry import NodeRegistry

# The names other modules import from here.
__all__ = ["DOWN", "READY", "RESYNC", "LiveView", "NodeRegistry", "Session", "tunnel_host", "tunnel_ip"]
