"""External (provider) networks, routers and floating IPs.

A router's gateway and a floating IP each hold their address as a port on
the external network (device_owner says whose), so IPAM, and its race
safety, is the ports' own. router_interface is keyed by the subnet: a subnet
is on at most one router, whatever races. floating_ip.port_id is unique: a
port has at most one floating IP (NULL, unassociated, repeats)."""

STATEMENTS = [
    "ALTER TABLE network ADD COLUMN external BOOLEAN NOT NULL DEFAULT FALSE",
    "ALTER TABLE network ADD COLUMN network_type INTEGER NOT NULL DEFAULT 1",
    "ALTER TABLE network ADD COLUMN physical_network VARCHAR(64) NOT NULL DEFAULT ''",
    "ALTER TABLE network ADD COLUMN segmentation_id INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE port ADD COLUMN device_owner VARCHAR(32) NOT NULL DEFAULT ''",
    "ALTER TABLE port ADD COLUMN device_id VARCHAR(36) NOT NULL DEFAULT ''",
    """CREATE TABLE router (
        id VARCHAR(36) PRIMARY KEY,
        project_id VARCHAR(36) NOT NULL REFERENCES project(id),
        name VARCHAR(64) NOT NULL,
        description TEXT NOT NULL DEFAULT '',
        gateway_port_id VARCHAR(36) REFERENCES port(id),
        create_time DOUBLE PRECISION NOT NULL,
        update_time DOUBLE PRECISION NOT NULL,
        UNIQUE (project_id, name))""",
    """CREATE TABLE router_interface (
        subnet_id VARCHAR(36) PRIMARY KEY REFERENCES subnet(id),
        router_id VARCHAR(36) NOT NULL REFERENCES router(id))""",
    "CREATE INDEX router_interface_router ON router_interface (router_id)",
    """CREATE TABLE floating_ip (
        id VARCHAR(36) PRIMARY KEY,
        project_id VARCHAR(36) NOT NULL REFERENCES project(id),
        network_id VARCHAR(36) NOT NULL REFERENCES network(id),
        address_port_id VARCHAR(36) NOT NULL UNIQUE REFERENCES port(id),
        floating_ip_address VARCHAR(45) NOT NULL,
        port_id VARCHAR(36) UNIQUE REFERENCES port(id),
        fixed_ip_address VARCHAR(45) NOT NULL DEFAULT '',
        router_id VARCHAR(36) REFERENCES router(id),
        description TEXT NOT NULL DEFAULT '',
        create_time DOUBLE PRECISION NOT NULL,
        update_time DOUBLE PRECISION NOT NULL)""",
    "CREATE INDEX floating_ip_project ON floating_ip (project_id)",
]
