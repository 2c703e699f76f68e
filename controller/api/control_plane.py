"""ControlPlaneService: the controllers of this cloud (admin only)."""

from __future__ import annotations

from controller import clock
from controller.api.convert import ts
from controller.auth.interceptor import CallContext
from controller.domain.control_plane import ControlPlane
from kumo.v1 import control_plane_pb2 as pb
from kumo.v1 import control_plane_pb2_grpc


class ControlPlaneServicer(control_plane_pb2_grpc.ControlPlaneServiceServicer):
    def __init__(self, control_plane: ControlPlane) -> None:
        self.control_plane = control_plane

    def ListControllers(
        self, request: pb.ListControllersRequest, context: CallContext
    ) -> pb.ListControllersResponse:
        rows, token = self.control_plane.list(request.page_size, request.page_token)
        now = clock.now()
        return pb.ListControllersResponse(
            controllers=[
                pb.Controller(
                    id=r.id,
                    hostname=r.hostname,
                    endpoint=r.endpoint,
                    node_endpoint=r.node_endpoint,
                    version=r.version,
                    state=pb.CONTROLLER_STATE_UP
                    if self.control_plane.up(r, now)
                    else pb.CONTROLLER_STATE_LOST,
                    node_sessions=r.node_sessions,
                    start_time=ts(r.start_time),
                    last_seen_time=ts(r.last_seen_time),
                )
                for r in rows
            ],
            next_page_token=token,
        )

    def RotateTokenKey(
        self, request: pb.RotateTokenKeyRequest, context: CallContext
    ) -> pb.RotateTokenKeyResponse:
        kid, removed = self.control_plane.rotate_token_key()
        return pb.RotateTokenKeyResponse(key_id=kid, removed_key_ids=removed)
