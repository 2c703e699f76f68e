"""Distributed SNAT: a router's address on the external network for each
node (other than its first) that runs guests on its subnets. The address is
a port on the external network (device_owner router_snat), so IPAM and its
race safety are the ports'; the key (router, node) gives a node at most one
per router, whatever races."""

STATEMENTS = [
    """CREATE TABLE router_snat (
        router_id VARCHAR(36) NOT NULL REFERENCES router(id),
        node_id VARCHAR(36) NOT NULL,
        port_id VARCHAR(36) NOT NULL UNIQUE REFERENCES port(id),
        PRIMARY KEY (router_id, node_id))""",
]
