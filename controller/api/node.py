"""NodeService, the admin's view of hosts and join tokens: validate requests,
call controller.domain.nodes, build responses. What node daemons call
(NodeAgentService) is in node_agent.py."""

from __future__ import annotations

from google.protobuf import duration_pb2, empty_pb2

from controller import clock
from controller import validation as v
from controller.api.convert import ts
from controller.api.migrations import node_drain_pb
from controller.auth.interceptor import CallContext
from controller.db.models import JoinToken
from controller.domain.evacuation import FAILED, MOVED, REBUILT, Evacuations
from controller.domain.migrations.drain import Drains
from controller.domain.nodes import DEFAULT_TTL, Nodes, NodeView, token_state
from controller.domain.placement import Placement
from controller.errors import InvalidArgument
from kumo.v1 import node_pb2 as pb
from kumo.v1 import node_pb2_grpc

STATE = {"READY": pb.NODE_STATE_READY, "DOWN": pb.NODE_STATE_DOWN, "DISABLED": pb.NODE_STATE_DISABLED}


def node_pb(view: NodeView) -> pb.Node:
    row = view.row
    out = pb.Node(
        id=row.id,
        name=row.name,
        state=STATE[view.state],
        disabled_reason=row.disabled_reason,
        connected=view.connected,
        inventory=view.inventory(),
        usage=view.usage(),
        desired_revision=row.desired_revision,
        applied_revision=view.applied_revision,
        controller_id=view.controller_id,
        address=view.address,
        certificate_serial=row.cert_serial,
        certificate_expire_time=ts(row.cert_expire_time),
        join_token_id=row.join_token_id,
        create_time=ts(row.create_time),
        update_time=ts(row.update_time),
        fenced=row.fenced,
    )
    if row.fenced:
        out.fence_time.CopyFrom(ts(row.fence_time))
    if view.last_heartbeat_time:
        out.last_heartbeat_time.CopyFrom(ts(view.last_heartbeat_time))
    return out


def join_token_pb(row: JoinToken) -> pb.JoinToken:
    out = pb.JoinToken(
        id=row.id,
        description=row.description,
        max_uses=row.max_uses,
        uses=row.uses,
        state=token_state(row, clock.now()),
        expire_time=ts(row.expire_time),
        create_time=ts(row.create_time),
        creator_user_id=row.creator_user_id,
    )
    if row.last_use_time:
        out.last_use_time.CopyFrom(ts(row.last_use_time))
    return out


def _ttl(request: pb.CreateJoinTokenRequest) -> float:
    if not request.HasField("ttl"):
        return DEFAULT_TTL
    d: duration_pb2.Duration = request.ttl
    if d.seconds < 0 or d.nanos < 0 or d.nanos >= 1_000_000_000:
        raise InvalidArgument("ttl must be a positive duration")
    return d.seconds + d.nanos / 1e9


OUTCOME = {
    MOVED: pb.EVACUATION_OUTCOME_MOVED,
    REBUILT: pb.EVACUATION_OUTCOME_REBUILT,
    FAILED: pb.EVACUATION_OUTCOME_FAILED,
}


def node_allocations(placement: Placement, node_ids: list[str]) -> dict[str, pb.NodeAllocation]:
    """Each node's capacity as placement counts it (the live inventory, the ratios, the claims)."""
    r = placement.ratios
    return {
        c.node_id: pb.NodeAllocation(
            cpu_allocation_ratio=r.cpu,
            ram_allocation_ratio=r.ram,
            disk_allocation_ratio=r.disk,
            allocatable_vcpus=int(c.vcpus * r.cpu),
            allocatable_memory_mb=int(c.ram_mb * r.ram),
            allocatable_disk_gb=int(c.disk_gb * r.disk),
            allocated_vcpus=c.vcpus_used,
            allocated_memory_mb=c.ram_mb_used,
            allocated_disk_gb=c.disk_gb_used,
        )
        for c in placement.candidates(node_ids)
    }


class NodeServicer(node_pb2_grpc.NodeServiceServicer):
    def __init__(self, nodes: Nodes, drains: Drains, evacuations: Evacuations, placement: Placement) -> None:
        self.nodes = nodes
        self.drains = drains
        self.evacuations = evacuations
        self.placement = placement

    def node_pbs(self, views: list[NodeView]) -> list[pb.Node]:
        msgs = [node_pb(x) for x in views]
        ids = [x.row.id for x in views]
        status = self.drains.status(ids)
        allocations = node_allocations(self.placement, ids) if ids else {}
        for view, msg in zip(views, msgs, strict=True):
            msg.maintenance = view.row.maintenance
            if view.row.id in status:
                msg.drain.CopyFrom(node_drain_pb(*status[view.row.id]))
            if view.row.id in allocations:
                msg.allocation.CopyFrom(allocations[view.row.id])
        return msgs

    def one(self, view: NodeView) -> pb.Node:
        return self.node_pbs([view])[0]

    def DrainNode(self, request: pb.DrainNodeRequest, context: CallContext) -> pb.Node:
        node_id = v.resource_id(request.id)
        return self.one(self.drains.drain(node_id, cold=request.cold))

    def UndrainNode(self, request: pb.UndrainNodeRequest, context: CallContext) -> pb.Node:
        node_id = v.resource_id(request.id)
        return self.one(self.drains.undrain(node_id))

    def ListNodes(self, request: pb.ListNodesRequest, context: CallContext) -> pb.ListNodesResponse:
        if request.name:
            v.name(request.name)
        views, token = self.nodes.list_nodes(request.page_size, request.page_token, request.name)
        return pb.ListNodesResponse(nodes=self.node_pbs(views), next_page_token=token)

    def GetNode(self, request: pb.GetNodeRequest, context: CallContext) -> pb.Node:
        return self.one(self.nodes.get_node(v.resource_id(request.id)))

    def DisableNode(self, request: pb.DisableNodeRequest, context: CallContext) -> pb.Node:
        reason = v.text(request.reason, "reason", 255)
        return self.one(self.nodes.set_enabled(v.resource_id(request.id), False, reason))

    def EnableNode(self, request: pb.EnableNodeRequest, context: CallContext) -> pb.Node:
        return self.one(self.nodes.set_enabled(v.resource_id(request.id), True, ""))

    def RotateNodeCertificate(
        self, request: pb.RotateNodeCertificateRequest, context: CallContext
    ) -> pb.Node:
        return self.one(self.nodes.rotate_certificate(v.resource_id(request.id)))

    def FenceNode(self, request: pb.FenceNodeRequest, context: CallContext) -> pb.Node:
        return self.one(self.nodes.fence(v.resource_id(request.id)))

    def UnfenceNode(self, request: pb.UnfenceNodeRequest, context: CallContext) -> pb.Node:
        return self.one(self.nodes.unfence(v.resource_id(request.id)))

    def EvacuateNode(self, request: pb.EvacuateNodeRequest, context: CallContext) -> pb.EvacuateNodeResponse:
        done = self.evacuations.evacuate(
            context.principal,
            v.resource_id(request.id),
            request.rebuild_local_disks,
            v.optional_id(request.target_node_id, "target_node_id"),
        )
        return pb.EvacuateNodeResponse(
            evacuations=[
                pb.InstanceEvacuation(
                    instance_id=e.instance_id,
                    instance_name=e.instance_name,
                    outcome=OUTCOME[e.outcome],
                    target_node_id=e.target_node_id,
                    message=e.message,
                )
                for e in done
            ]
        )

    def DeleteNode(self, request: pb.DeleteNodeRequest, context: CallContext) -> empty_pb2.Empty:
        self.nodes.delete_node(v.resource_id(request.id))
        return empty_pb2.Empty()

    def CreateJoinToken(
        self, request: pb.CreateJoinTokenRequest, context: CallContext
    ) -> pb.CreateJoinTokenResponse:
        jt = request.join_token
        row, token = self.nodes.create_join_token(
            context.principal,
            v.text(jt.description, "join_token.description", 255),
            jt.max_uses,
            _ttl(request),
            v.request_key(request),
        )
        return pb.CreateJoinTokenResponse(
            join_token=join_token_pb(row), token=token, ca_fingerprint=self.nodes.ca.fingerprint
        )

    def ListJoinTokens(
        self, request: pb.ListJoinTokensRequest, context: CallContext
    ) -> pb.ListJoinTokensResponse:
        rows, token = self.nodes.list_join_tokens(request.page_size, request.page_token)
        return pb.ListJoinTokensResponse(join_tokens=[join_token_pb(r) for r in rows], next_page_token=token)

    def DeleteJoinToken(self, request: pb.DeleteJoinTokenRequest, context: CallContext) -> empty_pb2.Empty:
        self.nodes.delete_join_token(v.resource_id(request.id))
        return empty_pb2.Empty()
