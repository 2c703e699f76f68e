"""An index on node.fenced: the instance sync and the HA pass ask for the
fenced nodes every second, and without it each asks by reading every node's
row (inventory and guests included): at 10,000 nodes, tens of megabytes a
second for what is nearly always no node."""

STATEMENTS = [
    "CREATE INDEX node_fenced ON node (fenced)",
]
