"""The composition root: builds every domain object and servicer of one
controller, in the order they depend on each other, and hands each feature the
others it extends. This is the one place that says how features join:

- CreateInstance: Instances runs its extensions (networks: NICs and security
  groups; volumes: frees volumes, lets nodes read volume image blobs), in that
  order, and asks Volumes for a boot volume.
- A node's desired state: instances first, then networks and volumes, which
  add to the instance entries the first made (port ids, volume ids).
- Deleting a project or a node: the in-use checks below, in order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry

from controller.api.console_forward import ConsoleForwarder
from controller.api.consoles import ConsoleApi
from controller.api.control_plane import ControlPlaneServicer
from controller.api.events import EventServicer
from controller.api.identity import IdentityServicer
from controller.api.images import ImageServicer, StreamGuard
from controller.api.images import add_to_server as add_image_service
from controller.api.instances import ComputeServicer
from controller.api.networks import NetworkInstanceApi, NetworkServicer
from controller.api.node import NodeServicer
from controller.api.node_agent import NodeAgentServicer, NodeEnrollmentServicer
from controller.api.volumes import VolumeInstanceApi, VolumeServicer
from controller.auth.principal_cache import PrincipalCache
from controller.auth.tokens import TokenKeyring
from controller.config import ControllerConfig
from controller.db import compute as compute_store
from controller.db import identity as identity_store
from controller.db import images as image_store
from controller.db import instances as instance_store
from controller.db import networks as network_store
from controller.db import routers as router_store
from controller.db import volumes as volume_store
from controller.db.database import db
from controller.domain.compute_catalog import ComputeCatalog
from controller.domain.consoles import Consoles
from controller.domain.control_plane import ControlPlane, controller_id
from controller.domain.evacuation import Evacuations
from controller.domain.events import EventLog
from controller.domain.extensions import InUseCheck
from controller.domain.identity import Identity
from controller.domain.images import Images
from controller.domain.instances import Instances
from controller.domain.migrations.drain import Drains
from controller.domain.migrations.live import LiveMigrations, MigrationSettings
from controller.domain.move_target import MoveTargets
from controller.domain.moves.cancel import MoveCancels
from controller.domain.moves.facade import Moves
from controller.domain.networks import Networks
from controller.domain.node_registry import NodeRegistry
from controller.domain.node_registry.consoles import ConsoleRelay
from controller.domain.node_registry.notifier import PgNotifier
from controller.domain.node_state import DesiredStates
from controller.domain.nodes import Nodes
from controller.domain.placement import USAGE_MAX_AGE, Placement
from controller.domain.quotas import Quotas, defaults_from
from controller.domain.scheduler import Ratios
from controller.domain.usage_copy import UsageCopy
from controller.domain.volumes import Volumes
from controller.metrics import ControllerMetrics, StateCollector
from controller.pki import ServerPki
from kumo.v1 import (
    compute_pb2,
    compute_pb2_grpc,
    control_plane_pb2,
    control_plane_pb2_grpc,
    event_pb2,
    event_pb2_grpc,
    identity_pb2,
    identity_pb2_grpc,
    image_pb2,
    network_pb2,
    network_pb2_grpc,
    node_agent_pb2,
    node_agent_pb2_grpc,
    node_pb2,
    node_pb2_grpc,
    volume_pb2,
    volume_pb2_grpc,
)

# What keeps a project from being deleted; the first kind found is named.
PROJECT_IN_USE = (
    InUseCheck("image", image_store.count_project_images),
    InUseCheck("server group", compute_store.count_server_groups),
    InUseCheck("instance", instance_store.count_in_project),
    InUseCheck("floating IP", router_store.count_floating_ips),
    InUseCheck("router", router_store.count_routers),
    InUseCheck("network", network_store.count_networks),
    InUseCheck("port", network_store.count_ports),
    InUseCheck("security group", network_store.count_groups),
    InUseCheck("volume", volume_store.count_in_project),
    InUseCheck("volume snapshot", volume_store.count_snapshots_in_project),
    # Last: resources are named before the people who own them.
    InUseCheck("member", identity_store.count_project_members, "revoke their roles there first"),
    InUseCheck(
        "default-project user",
        identity_store.count_default_project_users,
        "change their default_project_id first",
    ),
)
# What keeps a node from being deleted.
NODE_IN_USE = (
    InUseCheck("instance", instance_store.count_on_node),
    InUseCheck("volume", volume_store.count_on_node),
)


@dataclass(frozen=True)
class Service:
    """A servicer and how to add it to a gRPC server."""

    add: Callable[[Any, Any], None]
    servicer: Any
    name: str


def _service(module: Any, name: str, add: Callable[[Any, Any], None], servicer: Any) -> Service:
    return Service(add, servicer, module.DESCRIPTOR.services_by_name[name].full_name)


@dataclass(frozen=True)
class Parts:
    """One controller's domain objects and the services of its two ports."""

    events: EventLog
    identity: Identity
    quotas: Quotas
    control_plane: ControlPlane
    nodes: Nodes
    images: Images
    catalog: ComputeCatalog
    placement: Placement
    networks: Networks
    volumes: Volumes
    instances: Instances
    migrations: LiveMigrations
    drains: Drains
    evacuations: Evacuations
    desired: DesiredStates
    public: tuple[Service, ...]
    node: tuple[Service, ...]
    metrics: ControllerMetrics
    moves: Moves


def make_metrics() -> ControllerMetrics:
    """One controller's series on a registry of its own (made before the
    database opens, which records its write transactions into them)."""
    return ControllerMetrics(CollectorRegistry(auto_describe=False))


def node_registry(cfg: ControllerConfig, events: EventLog) -> NodeRegistry:
    """The node sessions: on PostgreSQL, one of several controllers' (it reads
    the others' nodes from the database and notifies them of changes)."""
    notifier = PgNotifier.for_database(db.obj)
    return NodeRegistry(
        cfg.node_grace_seconds,
        cfg.node_heartbeat_seconds,
        cfg.node_stats_log_seconds,
        events=events,
        controller_id=controller_id(cfg.data_dir),
        peers_seconds=cfg.node_peers_seconds if notifier is not None else 0.0,
        controller_lost_seconds=3 * cfg.controller_heartbeat_seconds,
        notifier=notifier,
    )


def assemble(
    cfg: ControllerConfig, pki: ServerPki, node_port: Callable[[], int], metrics: ControllerMetrics
) -> Parts:
    """Builds one controller on the database the calling thread is bound to.
    `node_port` tells enrolling nodes where the node port listens (known once
    the servers start)."""
    # The event log first: every feature that changes state records into it.
    events = EventLog(cfg.event_retention_seconds, cfg.event_prune_seconds)
    keyring = TokenKeyring(cfg.token_key_dir, legacy_file=cfg.shared_path / "token.key")
    identity = Identity(
        keyring, cfg.token_ttl_seconds, PROJECT_IN_USE, PrincipalCache(cfg.token_check_cache_seconds)
    )
    nodes = Nodes(cfg, pki.ca, NODE_IN_USE, events, node_registry(cfg, events))
    quotas = Quotas(defaults_from(cfg))
    control_plane = ControlPlane(
        cfg.data_dir,
        cfg.shared_path,
        pki.ca.fingerprint,
        keyring,
        cfg.token_ttl_seconds,
        lambda: nodes.registry.counts()["connected"],
        cfg.controller_heartbeat_seconds,
    )
    images = Images(cfg, quotas)
    images.recover()
    catalog = ComputeCatalog()
    ratios = Ratios(cfg.cpu_allocation_ratio, cfg.ram_allocation_ratio, cfg.disk_allocation_ratio)
    placement = Placement(nodes.registry, ratios, cfg.scheduler_weigher, metrics, UsageCopy(USAGE_MAX_AGE))
    metrics.registry.register(StateCollector(db.obj, nodes.registry.liveness))
    networks = Networks(nodes, quotas, cfg.dns_domain)
    nodes.registry.watch_tunnels(networks.tunnel_moved)
    volumes = Volumes(cfg, images, placement, nodes, quotas, events)
    # Live and cold migrations, resizes that move and evacuations claim their target one way.
    targets = MoveTargets(placement, (networks, volumes))
    # Cold migration and resize: their ports and shared volumes follow a move.
    moves = Moves(
        nodes.registry,
        catalog,
        images,
        placement,
        targets,
        quotas,
        (networks, volumes),
        events,
        cfg.instance_sync_seconds,
    )
    instances = Instances(
        cfg,
        catalog,
        images,
        nodes,
        placement,
        quotas,
        extensions=(networks, volumes, moves),
        boot_volumes=volumes,
        events=events,
    )
    migrations = LiveMigrations(
        MigrationSettings(cfg.live_migration_timeout_seconds, cfg.instance_sync_seconds),
        instances,
        targets,
        events,
        (networks, volumes),
    )
    # CancelMigration: a live migration, or a cold move still on its source.
    cancels = MoveCancels(moves.engine, migrations)
    drains = Drains(nodes, migrations, moves.cold, events, cfg.drain_parallel, cfg.instance_sync_seconds)
    # Evacuation moves instances with what networks and volumes gave them.
    evacuations = Evacuations(
        cfg,
        nodes,
        placement,
        targets,
        images,
        moves=(networks, volumes),
        events=events,
        unfinished=(migrations, moves),
    )
    # Moves and live migrations right after instances: networks and volumes then fill the
    # incoming instances' port and volume ids too.
    desired = DesiredStates(
        (instances, moves, migrations, networks, volumes), sharing=(networks.projection.shared_reads,)
    )
    consoles = Consoles(instances, ConsoleRelay(nodes.registry))

    guard = StreamGuard(cfg.image_max_streams or max(1, cfg.workers // 2), cfg.image_upload_idle_seconds)
    instance_api = (NetworkInstanceApi(networks), VolumeInstanceApi(volumes))
    public = (
        _service(
            identity_pb2,
            "IdentityService",
            identity_pb2_grpc.add_IdentityServiceServicer_to_server,
            IdentityServicer(identity, quotas),
        ),
        _service(
            control_plane_pb2,
            "ControlPlaneService",
            control_plane_pb2_grpc.add_ControlPlaneServiceServicer_to_server,
            ControlPlaneServicer(control_plane),
        ),
        _service(
            node_pb2,
            "NodeService",
            node_pb2_grpc.add_NodeServiceServicer_to_server,
            NodeServicer(nodes, drains, evacuations, placement),
        ),
        _service(
            node_agent_pb2,
            "NodeAgentService",
            node_agent_pb2_grpc.add_NodeAgentServiceServicer_to_server,
            NodeEnrollmentServicer(nodes, node_port),
        ),
        _service(image_pb2, "ImageService", add_image_service, ImageServicer(images, guard)),
        _service(
            compute_pb2,
            "ComputeService",
            compute_pb2_grpc.add_ComputeServiceServicer_to_server,
            ComputeServicer(
                catalog,
                instances,
                ConsoleApi(consoles, ConsoleForwarder(pki.ca.cert_pem)),
                instance_api,
                moves,
                migrations,
                cancels,
            ),
        ),
        _service(
            network_pb2,
            "NetworkService",
            network_pb2_grpc.add_NetworkServiceServicer_to_server,
            NetworkServicer(networks),
        ),
        _service(
            volume_pb2,
            "VolumeService",
            volume_pb2_grpc.add_VolumeServiceServicer_to_server,
            VolumeServicer(volumes),
        ),
        _service(
            event_pb2,
            "EventService",
            event_pb2_grpc.add_EventServiceServicer_to_server,
            EventServicer(events),
        ),
    )
    node = (
        _service(
            node_agent_pb2,
            "NodeAgentService",
            node_agent_pb2_grpc.add_NodeAgentServiceServicer_to_server,
            NodeAgentServicer(nodes, desired, instances, images, consoles.relay, control_plane, moves),
        ),
    )
    return Parts(
        events,
        identity,
        quotas,
        control_plane,
        nodes,
        images,
        catalog,
        placement,
        networks,
        volumes,
        instances,
        migrations,
        drains,
        evacuations,
        desired,
        public,
        node,
        metrics,
        moves,
    )
