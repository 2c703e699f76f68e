"""peewee models. The schema itself is made by migrations (controller/db/migrations),
never by create_tables; tests/test_migrations.py checks that the two agree."""

from __future__ import annotations

import peewee

from controller.db.database import db


class BaseModel(peewee.Model):
    class Meta:
        database = db
        legacy_table_names = False


class Project(BaseModel):
    id = peewee.CharField(primary_key=True, max_length=36)
    name = peewee.CharField(max_length=64, unique=True)
    description = peewee.TextField(default="")
    enabled = peewee.BooleanField(default=True)
    create_time = peewee.DoubleField()
    update_time = peewee.DoubleField()


class User(BaseModel):
    id = peewee.CharField(primary_key=True, max_length=36)
    name = peewee.CharField(max_length=64, unique=True)
    email = peewee.CharField(max_length=255, default="")
    description = peewee.TextField(default="")
    enabled = peewee.BooleanField(default=True)
    password_hash = peewee.CharField(max_length=255)
    default_project_id = peewee.CharField(max_length=36, default="")
    create_time = peewee.DoubleField()
    update_time = peewee.DoubleField()


class RoleAssignment(BaseModel):
    user = peewee.ForeignKeyField(User, on_delete="CASCADE", column_name="user_id")
    project = peewee.ForeignKeyField(Project, on_delete="CASCADE", column_name="project_id")
    role = peewee.IntegerField()
    create_time = peewee.DoubleField()

    class Meta:
        primary_key = peewee.CompositeKey("user", "project", "role")


class Token(BaseModel):
    id = peewee.CharField(primary_key=True, max_length=36)
    user = peewee.ForeignKeyField(User, on_delete="CASCADE", column_name="user_id")
    project = peewee.ForeignKeyField(Project, on_delete="CASCADE", column_name="project_id")
    issue_time = peewee.DoubleField()
    expire_time = peewee.DoubleField()
    revoked = peewee.BooleanField(default=False)


class IdempotencyKey(BaseModel):
    """Remembers which resource a create with a request_id made, and the
    digest of the rest of that request (controller/domain/idempotency.py)."""

    request_id = peewee.CharField(max_length=128)
    kind = peewee.CharField(max_length=32)
    # The key's scope: a project id, a user id (keypairs) or "" (cloud-wide kinds).
    project_id = peewee.CharField(max_length=36)
    resource_id = peewee.CharField(max_length=36)
    # sha256 (hex) of the request without its request_id; "" for keys recorded before m0009.
    request_digest = peewee.CharField(max_length=64, default="")
    create_time = peewee.DoubleField()

    class Meta:
        primary_key = peewee.CompositeKey("request_id", "kind", "project_id")


class Flavor(BaseModel):
    id = peewee.CharField(primary_key=True, max_length=36)
    name = peewee.CharField(max_length=64, unique=True)
    description = peewee.TextField(default="")
    vcpus = peewee.IntegerField()
    ram_mb = peewee.IntegerField()
    disk_gb = peewee.IntegerField()
    is_public = peewee.BooleanField(default=True)
    create_time = peewee.DoubleField()
    update_time = peewee.DoubleField()


class FlavorAccess(BaseModel):
    flavor = peewee.ForeignKeyField(Flavor, on_delete="CASCADE", column_name="flavor_id")
    project = peewee.ForeignKeyField(Project, on_delete="CASCADE", column_name="project_id")

    class Meta:
        primary_key = peewee.CompositeKey("flavor", "project")


class Keypair(BaseModel):
    id = peewee.CharField(primary_key=True, max_length=36)
    user = peewee.ForeignKeyField(User, on_delete="CASCADE", column_name="user_id")
    name = peewee.CharField(max_length=64)
    public_key = peewee.TextField()
    fingerprint = peewee.CharField(max_length=128)
    create_time = peewee.DoubleField()

    class Meta:
        indexes = ((("user", "name"), True),)


class ServerGroup(BaseModel):
    id = peewee.CharField(primary_key=True, max_length=36)
    project = peewee.ForeignKeyField(Project, on_delete="CASCADE", column_name="project_id")
    name = peewee.CharField(max_length=64)
    policy = peewee.IntegerField()
    create_time = peewee.DoubleField()

    class Meta:
        indexes = ((("project", "name"), True),)


class Node(BaseModel):
    """A hypervisor host. Liveness (status, last heartbeat, usage) is kept in
    memory by the controller and written here in batches; see domain/nodes.py."""

    id = peewee.CharField(primary_key=True, max_length=36)
    name = peewee.CharField(max_length=64, unique=True)
    enabled = peewee.BooleanField(default=True)
    disabled_reason = peewee.TextField(default="")
    # READY | DOWN: liveness as last written; an admin's disable is `enabled`.
    status = peewee.CharField(max_length=16, default="DOWN")
    cert_serial = peewee.CharField(max_length=64)
    cert_expire_time = peewee.DoubleField()
    # Renewed but not yet used ('' if none): accepted too until the node opens
    # a session with it, which makes it the node's certificate.
    pending_cert_serial = peewee.CharField(max_length=64, default="")
    pending_cert_expire_time = peewee.DoubleField(default=0)
    cert_rotate_requested = peewee.BooleanField(default=False)
    join_token_id = peewee.CharField(max_length=36, default="")
    address = peewee.CharField(max_length=255, default="")
    hostname = peewee.CharField(max_length=255, default="")
    vcpus = peewee.IntegerField(default=0)
    memory_mb = peewee.BigIntegerField(default=0)
    disk_gb = peewee.BigIntegerField(default=0)
    virt_type = peewee.CharField(max_length=16, default="")
    driver = peewee.CharField(max_length=32, default="")
    arch = peewee.CharField(max_length=32, default="")
    cpu_model = peewee.CharField(max_length=255, default="")
    libvirt_version = peewee.CharField(max_length=32, default="")
    qemu_version = peewee.CharField(max_length=32, default="")
    agent_version = peewee.CharField(max_length=32, default="")
    kernel = peewee.CharField(max_length=128, default="")
    # In maintenance (DrainNode): no new placements.
    maintenance = peewee.BooleanField(default=False)
    usage = peewee.TextField(default="{}")  # JSON of NodeUsage
    desired_revision = peewee.BigIntegerField(default=1)
    applied_revision = peewee.BigIntegerField(default=0)
    last_heartbeat_time = peewee.DoubleField(default=0)
    create_time = peewee.DoubleField()
    update_time = peewee.DoubleField()
    # The controller holding the node's session ('' when none does) and the
    # guests it last reported (base64 of a Heartbeat with only `guests`);
    # its whole inventory (base64 of a NodeInventory).
    session_controller_id = peewee.CharField(max_length=36, default="")
    guests = peewee.TextField(default="")
    inventory = peewee.TextField(default="")
    # An admin declared it powered off (FenceNode): no session until re-admitted.
    fenced = peewee.BooleanField(default=False, index=True)
    fence_time = peewee.DoubleField(default=0)


class JoinToken(BaseModel):
    """A node join token. Only the sha256 of its secret is kept."""

    id = peewee.CharField(primary_key=True, max_length=36)
    description = peewee.TextField(default="")
    secret_hash = peewee.CharField(max_length=64)
    max_uses = peewee.IntegerField()
    uses = peewee.IntegerField(default=0)
    expire_time = peewee.DoubleField()
    create_time = peewee.DoubleField()
    last_use_time = peewee.DoubleField(default=0)
    creator_user_id = peewee.CharField(max_length=36, default="")


class ImageBlob(BaseModel):
    """One stored blob file (data_dir/images/blobs), named by the sha256 of its bytes."""

    sha256 = peewee.CharField(primary_key=True, max_length=64)
    size_bytes = peewee.BigIntegerField()
    create_time = peewee.DoubleField()


class Image(BaseModel):
    id = peewee.CharField(primary_key=True, max_length=36)
    project = peewee.ForeignKeyField(Project, on_delete="CASCADE", column_name="project_id")
    name = peewee.CharField(max_length=64)
    disk_format = peewee.IntegerField()  # kumo.v1.DiskFormat
    visibility = peewee.IntegerField()  # kumo.v1.ImageVisibility
    status = peewee.IntegerField()  # kumo.v1.ImageStatus
    status_reason = peewee.TextField(default="")
    size_bytes = peewee.BigIntegerField(default=0)
    virtual_size_bytes = peewee.BigIntegerField(default=0)
    # The blob's sha256 once ACTIVE; "" before.
    checksum_sha256 = peewee.CharField(max_length=64, default="")
    min_disk_gb = peewee.IntegerField(default=0)
    min_ram_mb = peewee.IntegerField(default=0)
    protected = peewee.BooleanField(default=False)
    properties = peewee.TextField(default="{}")  # JSON object of strings
    create_time = peewee.DoubleField()
    update_time = peewee.DoubleField()
    delete_time = peewee.DoubleField(default=0)


class Instance(BaseModel):
    """A guest. Sizes and the image's blob are copied in at create time: the
    flavor or image may change or go while the instance lives."""

    id = peewee.CharField(primary_key=True, max_length=36)
    project = peewee.ForeignKeyField(Project, column_name="project_id")
    user_id = peewee.CharField(max_length=36)
    name = peewee.CharField(max_length=64)
    image_id = peewee.CharField(max_length=36)
    image_sha256 = peewee.CharField(max_length=64)
    image_format = peewee.IntegerField()
    image_size_bytes = peewee.BigIntegerField()
    flavor_id = peewee.CharField(max_length=36)
    keypair_id = peewee.CharField(max_length=36, default="")
    public_key = peewee.TextField(default="")
    server_group_id = peewee.CharField(max_length=36, default="")
    node = peewee.ForeignKeyField(Node, column_name="node_id")
    state = peewee.IntegerField()  # kumo.v1.InstanceState
    power_state = peewee.CharField(max_length=16, default="")  # as last observed on the node
    fault = peewee.TextField(default="")
    task = peewee.CharField(max_length=32, default="")
    vcpus = peewee.IntegerField()
    ram_mb = peewee.IntegerField()
    disk_gb = peewee.IntegerField()
    user_data = peewee.TextField(default="")  # base64
    reboot_generation = peewee.IntegerField(default=0)
    reboot_hard = peewee.BooleanField(default=False)
    snapshot_image_id = peewee.CharField(max_length=36, default="")
    create_time = peewee.DoubleField()
    update_time = peewee.DoubleField()
    launch_time = peewee.DoubleField(default=0)
    # Evacuated by the controller itself when its node is lost and fenced.
    ha = peewee.BooleanField(default=False)

    class Meta:
        indexes = ((("project", "name"), True),)


class NodeUsage(BaseModel):
    """What instances claim on a node; the scheduler's claims update it with a
    conditional UPDATE so two racing claims cannot both fit."""

    node = peewee.ForeignKeyField(Node, primary_key=True, on_delete="CASCADE", column_name="node_id")
    vcpus_used = peewee.IntegerField(default=0)
    ram_mb_used = peewee.BigIntegerField(default=0)
    disk_gb_used = peewee.BigIntegerField(default=0)
    instances = peewee.IntegerField(default=0)


class ConsoleLog(BaseModel):
    instance = peewee.ForeignKeyField(
        Instance, primary_key=True, on_delete="CASCADE", column_name="instance_id"
    )
    data = peewee.TextField()
    update_time = peewee.DoubleField()


class Volume(BaseModel):
    """A block volume on one node (local backend). `claimed_gb` is the disk it
    holds in node_usage, released when the row goes."""

    id = peewee.CharField(primary_key=True, max_length=36)
    project = peewee.ForeignKeyField(Project, column_name="project_id")
    name = peewee.CharField(max_length=64)
    description = peewee.TextField(default="")
    size_gb = peewee.BigIntegerField()
    state = peewee.IntegerField()  # kumo.v1.VolumeState
    fault = peewee.TextField(default="")
    node = peewee.ForeignKeyField(Node, column_name="node_id")
    claimed_gb = peewee.BigIntegerField(default=0)
    source_image_id = peewee.CharField(max_length=36, default="")
    image_sha256 = peewee.CharField(max_length=64, default="")
    image_format = peewee.IntegerField(default=0)
    image_size_bytes = peewee.BigIntegerField(default=0)
    source_snapshot_id = peewee.CharField(max_length=36, default="")
    # Not a foreign key: the instance row goes first, then the volume sync
    # makes the volume AVAILABLE again.
    instance_id = peewee.CharField(max_length=36, default="")
    device = peewee.CharField(max_length=16, default="")
    boot = peewee.BooleanField(default=False)
    attach_time = peewee.DoubleField(default=0)
    create_time = peewee.DoubleField()
    update_time = peewee.DoubleField()
    type_id = peewee.CharField(max_length=36)
    # The type's backend (copied: it never changes). On a shared backend
    # `node` is the node that does the volume's work (its instance's node
    # while attached) and `claimed_gb` is 0.
    backend = peewee.CharField(max_length=32, default="local")

    class Meta:
        indexes = ((("project", "name"), True),)


class VolumeType(BaseModel):
    """An admin-defined kind of volume: which backend holds it."""

    id = peewee.CharField(primary_key=True, max_length=36)
    name = peewee.CharField(max_length=64, unique=True)
    backend = peewee.CharField(max_length=32)
    description = peewee.TextField(default="")
    is_default = peewee.BooleanField(default=False)
    create_time = peewee.DoubleField()


class VolumeSnapshot(BaseModel):
    id = peewee.CharField(primary_key=True, max_length=36)
    project = peewee.ForeignKeyField(Project, column_name="project_id")
    name = peewee.CharField(max_length=64)
    description = peewee.TextField(default="")
    volume = peewee.ForeignKeyField(Volume, column_name="volume_id")
    node_id = peewee.CharField(max_length=36)
    size_gb = peewee.BigIntegerField()
    state = peewee.IntegerField()  # kumo.v1.VolumeSnapshotState
    fault = peewee.TextField(default="")
    create_time = peewee.DoubleField()
    update_time = peewee.DoubleField()

    class Meta:
        indexes = ((("project", "name"), True),)


class Network(BaseModel):
    id = peewee.CharField(primary_key=True, max_length=36)
    project = peewee.ForeignKeyField(Project, column_name="project_id")
    name = peewee.CharField(max_length=64)
    description = peewee.TextField(default="")
    shared = peewee.BooleanField(default=False)
    external_routable = peewee.BooleanField(default=False)
    mtu = peewee.IntegerField()
    vni = peewee.IntegerField(unique=True)
    create_time = peewee.DoubleField()
    update_time = peewee.DoubleField()
    external = peewee.BooleanField(default=False)
    network_type = peewee.IntegerField(default=1)  # kumo.v1.NetworkType
    physical_network = peewee.CharField(max_length=64, default="")
    segmentation_id = peewee.IntegerField(default=0)

    class Meta:
        indexes = ((("project", "name"), True),)


class Subnet(BaseModel):
    id = peewee.CharField(primary_key=True, max_length=36)
    network = peewee.ForeignKeyField(Network, on_delete="CASCADE", column_name="network_id")
    name = peewee.CharField(max_length=64)
    description = peewee.TextField(default="")
    ip_version = peewee.IntegerField()
    cidr = peewee.CharField(max_length=64)
    gateway_ip = peewee.CharField(max_length=45, default="")
    allocation_pools = peewee.TextField(default="[]")  # JSON [[start, end], ...]
    dns_servers = peewee.TextField(default="[]")  # JSON list
    ipv6_address_mode = peewee.IntegerField(default=0)  # kumo.v1.Ipv6AddressMode; 0 on IPv4
    create_time = peewee.DoubleField()
    update_time = peewee.DoubleField()

    class Meta:
        indexes = ((("network", "name"), True),)


class Port(BaseModel):
    """A NIC's MAC and addresses. instance_id is a plain column (no foreign
    key): the port outlives the instance row only until the instance's gone
    hook unbinds or deletes it, in the same transaction."""

    id = peewee.CharField(primary_key=True, max_length=36)
    project = peewee.ForeignKeyField(Project, column_name="project_id")
    network = peewee.ForeignKeyField(Network, on_delete="CASCADE", column_name="network_id")
    name = peewee.CharField(max_length=64, default="")
    description = peewee.TextField(default="")
    mac_address = peewee.CharField(max_length=17, unique=True)
    instance_id = peewee.CharField(max_length=36, default="", index=True)
    nic_index = peewee.IntegerField(default=0)
    # Made by CreateInstance for a `network` request: deleted with the instance.
    auto_delete = peewee.BooleanField(default=False)
    create_time = peewee.DoubleField()
    update_time = peewee.DoubleField()
    # "router_gateway" or "floating_ip" (device_id: the router or floating
    # IP): an address on an external network, not a NIC; "" for NICs.
    device_owner = peewee.CharField(max_length=32, default="")
    device_id = peewee.CharField(max_length=36, default="")


class IpAllocation(BaseModel):
    """One handed-out address; the primary key (subnet, address) is what makes
    a double allocation impossible, whatever races."""

    subnet = peewee.ForeignKeyField(Subnet, column_name="subnet_id")
    ip_address = peewee.CharField(max_length=45)
    port = peewee.ForeignKeyField(Port, on_delete="CASCADE", column_name="port_id")

    class Meta:
        primary_key = peewee.CompositeKey("subnet", "ip_address")


class SecurityGroup(BaseModel):
    id = peewee.CharField(primary_key=True, max_length=36)
    project = peewee.ForeignKeyField(Project, on_delete="CASCADE", column_name="project_id")
    name = peewee.CharField(max_length=64)
    description = peewee.TextField(default="")
    is_default = peewee.BooleanField(default=False)
    create_time = peewee.DoubleField()
    update_time = peewee.DoubleField()

    class Meta:
        indexes = ((("project", "name"), True),)


class SecurityGroupRule(BaseModel):
    id = peewee.CharField(primary_key=True, max_length=36)
    security_group = peewee.ForeignKeyField(
        SecurityGroup, on_delete="CASCADE", column_name="security_group_id", backref="rules"
    )
    direction = peewee.CharField(max_length=8)  # "ingress" | "egress"
    ip_version = peewee.IntegerField()
    protocol = peewee.CharField(max_length=8, default="")
    port_range_min = peewee.IntegerField(default=0)
    port_range_max = peewee.IntegerField(default=0)
    remote_cidr = peewee.CharField(max_length=64, default="")
    remote_group = peewee.ForeignKeyField(
        SecurityGroup, null=True, on_delete="CASCADE", column_name="remote_group_id", backref="+"
    )
    description = peewee.TextField(default="")
    create_time = peewee.DoubleField()


class PortSecurityGroup(BaseModel):
    port = peewee.ForeignKeyField(Port, on_delete="CASCADE", column_name="port_id")
    security_group = peewee.ForeignKeyField(SecurityGroup, column_name="security_group_id")

    class Meta:
        primary_key = peewee.CompositeKey("port", "security_group")


class Router(BaseModel):
    id = peewee.CharField(primary_key=True, max_length=36)
    project = peewee.ForeignKeyField(Project, column_name="project_id")
    name = peewee.CharField(max_length=64)
    description = peewee.TextField(default="")
    gateway_port = peewee.ForeignKeyField(Port, null=True, column_name="gateway_port_id")
    create_time = peewee.DoubleField()
    update_time = peewee.DoubleField()

    class Meta:
        indexes = ((("project", "name"), True),)


class RouterInterface(BaseModel):
    """Keyed by the subnet: a subnet is on at most one router."""

    subnet = peewee.ForeignKeyField(Subnet, primary_key=True, column_name="subnet_id")
    router = peewee.ForeignKeyField(Router, column_name="router_id")


class RouterSnat(BaseModel):
    """A router's SNAT address on one node (distributed SNAT): keyed by
    (router, node), the address a port on the external network."""

    router = peewee.ForeignKeyField(Router, column_name="router_id")
    node_id = peewee.CharField(max_length=36)
    port = peewee.ForeignKeyField(Port, unique=True, column_name="port_id", backref="+")

    class Meta:
        primary_key = peewee.CompositeKey("router", "node_id")


class FloatingIp(BaseModel):
    id = peewee.CharField(primary_key=True, max_length=36)
    project = peewee.ForeignKeyField(Project, column_name="project_id")
    network = peewee.ForeignKeyField(Network, column_name="network_id")
    # The port on the external network that holds the address.
    address_port = peewee.ForeignKeyField(Port, unique=True, column_name="address_port_id")
    floating_ip_address = peewee.CharField(max_length=45)
    port = peewee.ForeignKeyField(Port, null=True, unique=True, column_name="port_id", backref="+")
    fixed_ip_address = peewee.CharField(max_length=45, default="")
    router = peewee.ForeignKeyField(Router, null=True, column_name="router_id")
    description = peewee.TextField(default="")
    create_time = peewee.DoubleField()
    update_time = peewee.DoubleField()


class QuotaLimit(BaseModel):
    """A project's own limit for one resource, overriding the cloud default
    (controller/domain/quotas.py); -1 is unlimited."""

    project = peewee.ForeignKeyField(Project, on_delete="CASCADE", column_name="project_id")
    resource = peewee.CharField(max_length=32)
    hard_limit = peewee.BigIntegerField()
    update_time = peewee.DoubleField()

    class Meta:
        primary_key = peewee.CompositeKey("project", "resource")


class QuotaUsage(BaseModel):
    """What a project holds of one resource: a counter changed in the
    transaction that creates or deletes, never a SUM over its rows."""

    project = peewee.ForeignKeyField(Project, on_delete="CASCADE", column_name="project_id")
    resource = peewee.CharField(max_length=32)
    used = peewee.BigIntegerField(default=0)

    class Meta:
        primary_key = peewee.CompositeKey("project", "resource")


class ControlPlaneFact(BaseModel):
    """What every controller of the control plane must agree on, recorded by
    the first: `ca_fingerprint`, `token_key_check:<kid>`."""

    name = peewee.CharField(primary_key=True, max_length=128)
    value = peewee.TextField()
    create_time = peewee.DoubleField()


class Controller(BaseModel):
    """A controller process of the control plane (its id is kept in its data directory)."""

    id = peewee.CharField(primary_key=True, max_length=36)
    hostname = peewee.CharField(max_length=255)
    endpoint = peewee.CharField(max_length=255)
    node_endpoint = peewee.CharField(max_length=255)
    version = peewee.CharField(max_length=32)
    start_time = peewee.DoubleField()
    last_seen_time = peewee.DoubleField()
    node_sessions = peewee.IntegerField(default=0)


class Event(BaseModel):
    """One entry of the event log (controller/domain/events.py); no foreign
    keys, since an event outlives the resource, user and project it names."""

    id = peewee.CharField(primary_key=True, max_length=36)
    time = peewee.DoubleField()
    request_id = peewee.CharField(max_length=128, default="")
    user_id = peewee.CharField(max_length=36, default="")
    user_name = peewee.CharField(max_length=64, default="")
    project_id = peewee.CharField(max_length=36, default="")
    resource_type = peewee.CharField(max_length=64)
    resource_id = peewee.CharField(max_length=64, default="")
    action = peewee.CharField(max_length=64)
    ok = peewee.BooleanField()
    error_code = peewee.CharField(max_length=32, default="")
    error_reason = peewee.CharField(max_length=64, default="")
    message = peewee.TextField(default="")
    method = peewee.CharField(max_length=128, default="")


class InstanceMove(BaseModel):
    """A cold migration or resize under way (controller/domain/moves/): one per
    instance. The instance row holds the claim of the node it is on now, with
    its current sizes; `extra_*` is the other claim the move holds (the target
    before the switch, the source after it), released when the move ends.
    `disk_sha256`: the flattened root disk in the blob store (the content from
    before the move), kept until the move ends."""

    id = peewee.CharField(primary_key=True, max_length=36)
    # Not a foreign key: the instance's final delete frees the move's claims
    # (InstanceExtension.instance_gone) after its row went.
    instance_id = peewee.CharField(max_length=36, unique=True)
    kind = peewee.CharField(max_length=16)  # migrate | resize
    phase = peewee.CharField(max_length=16)  # stopping | arriving | verify | reverting
    source_node_id = peewee.CharField(max_length=36)
    target_node_id = peewee.CharField(max_length=36)
    old_flavor_id = peewee.CharField(max_length=36)
    old_vcpus = peewee.IntegerField()
    old_ram_mb = peewee.IntegerField()
    old_disk_gb = peewee.IntegerField()
    new_flavor_id = peewee.CharField(max_length=36)
    new_vcpus = peewee.IntegerField()
    new_ram_mb = peewee.IntegerField()
    new_disk_gb = peewee.IntegerField()
    was_running = peewee.BooleanField()
    copy_disk = peewee.BooleanField()  # a node-local root disk goes through the blob store
    disk_sha256 = peewee.CharField(max_length=64, default="")
    disk_size_bytes = peewee.BigIntegerField(default=0)
    extra_node_id = peewee.CharField(max_length=36)
    extra_vcpus = peewee.IntegerField(default=0)
    extra_ram_mb = peewee.BigIntegerField(default=0)
    extra_disk_gb = peewee.BigIntegerField(default=0)
    extra_instance = peewee.BooleanField(default=False)  # the extra claim counts an instance on its node
    create_time = peewee.DoubleField()
    update_time = peewee.DoubleField()


class LiveMigration(BaseModel):
    """One live migration of an instance (domain/migrations/live.py). `vcpus`,
    `ram_mb`, `disk_gb` are what it claims on the target while unfinished."""

    id = peewee.CharField(primary_key=True, max_length=36)
    instance_id = peewee.CharField(max_length=36, index=True)
    project_id = peewee.CharField(max_length=36)
    source_node_id = peewee.CharField(max_length=36)
    target_node_id = peewee.CharField(max_length=36, default="")
    state = peewee.IntegerField(index=True)  # kumo.v1.LiveMigrationState
    bytes_total = peewee.BigIntegerField(default=0)
    bytes_processed = peewee.BigIntegerField(default=0)
    downtime_ms = peewee.BigIntegerField(default=0)
    fault = peewee.TextField(default="")
    drain_node_id = peewee.CharField(max_length=36, default="")
    deadline = peewee.DoubleField(default=0)
    vcpus = peewee.IntegerField(default=0)
    ram_mb = peewee.IntegerField(default=0)
    disk_gb = peewee.IntegerField(default=0)
    create_time = peewee.DoubleField()
    update_time = peewee.DoubleField()
    end_time = peewee.DoubleField(default=0)
    cancelled_by = peewee.CharField(max_length=255, default="")  # CancelMigration's caller


class NodeDrain(BaseModel):
    """A node's last drain (DrainNode): its state and how many guests it began with."""

    node = peewee.ForeignKeyField(Node, primary_key=True, on_delete="CASCADE", column_name="node_id")
    state = peewee.IntegerField()  # kumo.v1.NodeDrainState
    instances_total = peewee.IntegerField(default=0)
    start_time = peewee.DoubleField()
    end_time = peewee.DoubleField(default=0)
    cold = peewee.BooleanField(default=False)  # guests that cannot go live are cold-migrated
    cold_started = peewee.IntegerField(default=0)
