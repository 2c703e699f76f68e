"""The production node heartbeat interval: the controller's default (it tells
each node the interval in its welcome), and what benchmarks of a heartbeating
fleet run at, without importing the controller."""

DEFAULT_NODE_HEARTBEAT_SECONDS = 5.0
