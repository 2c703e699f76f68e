"""ComputeService: flavors, keypairs, server groups (instances: controller/api/instances.py)."""

from __future__ import annotations

from types import MappingProxyType

from google.protobuf import empty_pb2

from controller import validation as v
from controller.api.convert import ts
from controller.auth.interceptor import CallContext
from controller.db.models import Flavor, Keypair, ServerGroup
from controller.domain.compute_catalog import ComputeCatalog
from controller.errors import InvalidArgument
from kumo.v1 import compute_pb2 as pb


def flavor_pb(row: Flavor, project_ids: list[str]) -> pb.Flavor:
    """`project_ids`: the projects a private flavor is shared with (loaded for a page at once)."""
    return pb.Flavor(
        id=row.id,
        name=row.name,
        description=row.description,
        vcpus=row.vcpus,
        ram_mb=row.ram_mb,
        disk_gb=row.disk_gb,
        is_public=row.is_public,
        project_ids=project_ids,
        create_time=ts(row.create_time),
        update_time=ts(row.update_time),
    )


def keypair_pb(row: Keypair, private_key: str = "") -> pb.Keypair:
    return pb.Keypair(
        id=row.id,
        name=row.name,
        user_id=row.user_id,
        public_key=row.public_key,
        fingerprint=row.fingerprint,
        private_key=private_key,
        create_time=ts(row.create_time),
    )


def project_ids(values: list[str]) -> list[str]:
    return [v.resource_id(p, "flavor.project_ids") for p in values]


FLAVOR_UPDATES: v.UpdateRules = MappingProxyType(
    {
        "description": lambda f: v.text(f.description, "flavor.description"),
        "is_public": lambda f: f.is_public,
        "project_ids": lambda f: project_ids(list(f.project_ids)),  # the access list, not a column
    }
)


class ComputeCatalogServicer:
    """The flavor, keypair and server-group half of ComputeService;
    controller/api/instances.py adds the instance half."""

    def __init__(self, catalog: ComputeCatalog) -> None:
        self.catalog = catalog

    def flavor_pbs(self, rows: list[Flavor]) -> list[pb.Flavor]:
        access = self.catalog.flavor_access([r.id for r in rows])
        return [flavor_pb(r, access.get(r.id, [])) for r in rows]

    def flavor_pb(self, row: Flavor) -> pb.Flavor:
        return self.flavor_pbs([row])[0]

    def group_pbs(self, rows: list[ServerGroup]) -> list[pb.ServerGroup]:
        members = self.catalog.members_of([r.id for r in rows])
        return [
            pb.ServerGroup(
                id=r.id,
                name=r.name,
                project_id=r.project_id,
                policy=r.policy,
                member_ids=members.get(r.id, []),
                create_time=ts(r.create_time),
            )
            for r in rows
        ]

    def group_pb(self, row: ServerGroup) -> pb.ServerGroup:
        return self.group_pbs([row])[0]

    # Flavors

    def CreateFlavor(self, request: pb.CreateFlavorRequest, context: CallContext) -> pb.Flavor:
        f = request.flavor
        fields = {
            "name": v.name(f.name, "flavor.name"),
            "description": v.text(f.description, "flavor.description"),
            "vcpus": f.vcpus,
            "ram_mb": f.ram_mb,
            "disk_gb": f.disk_gb,
            "is_public": f.is_public,
        }
        if f.is_public and f.project_ids:
            raise InvalidArgument("flavor.project_ids is only for private flavors (is_public false)")
        row = self.catalog.create_flavor(fields, project_ids(list(f.project_ids)), v.request_key(request))
        return self.flavor_pb(row)

    def GetFlavor(self, request: pb.GetFlavorRequest, context: CallContext) -> pb.Flavor:
        return self.flavor_pb(self.catalog.get_flavor(context.principal, v.resource_id(request.id)))

    def ListFlavors(self, request: pb.ListFlavorsRequest, context: CallContext) -> pb.ListFlavorsResponse:
        if request.name:
            v.name(request.name)
        rows, token = self.catalog.list_flavors(
            context.principal, request.page_size, request.page_token, request.name
        )
        return pb.ListFlavorsResponse(flavors=self.flavor_pbs(rows), next_page_token=token)

    def UpdateFlavor(self, request: pb.UpdateFlavorRequest, context: CallContext) -> pb.Flavor:
        f = request.flavor
        fields = v.updates(request.update_mask.paths, f, FLAVOR_UPDATES)
        access = fields.pop("project_ids", None)
        return self.flavor_pb(self.catalog.update_flavor(v.resource_id(f.id, "flavor.id"), fields, access))

    def DeleteFlavor(self, request: pb.DeleteFlavorRequest, context: CallContext) -> empty_pb2.Empty:
        self.catalog.delete_flavor(v.resource_id(request.id))
        return empty_pb2.Empty()

    # Keypairs

    def CreateKeypair(self, request: pb.CreateKeypairRequest, context: CallContext) -> pb.Keypair:
        k = request.keypair
        row, private = self.catalog.create_keypair(
            context.principal, v.name(k.name, "keypair.name"), k.public_key, v.request_key(request)
        )
        return keypair_pb(row, private)

    def GetKeypair(self, request: pb.GetKeypairRequest, context: CallContext) -> pb.Keypair:
        return keypair_pb(self.catalog.get_keypair(context.principal, v.resource_id(request.id)))

    def ListKeypairs(self, request: pb.ListKeypairsRequest, context: CallContext) -> pb.ListKeypairsResponse:
        if request.name:
            v.name(request.name)
        rows, token = self.catalog.list_keypairs(
            context.principal, request.page_size, request.page_token, request.name
        )
        return pb.ListKeypairsResponse(keypairs=[keypair_pb(r) for r in rows], next_page_token=token)

    def DeleteKeypair(self, request: pb.DeleteKeypairRequest, context: CallContext) -> empty_pb2.Empty:
        self.catalog.delete_keypair(context.principal, v.resource_id(request.id))
        return empty_pb2.Empty()

    # Server groups

    def CreateServerGroup(self, request: pb.CreateServerGroupRequest, context: CallContext) -> pb.ServerGroup:
        g = request.server_group
        if g.policy not in (pb.SERVER_GROUP_POLICY_AFFINITY, pb.SERVER_GROUP_POLICY_ANTI_AFFINITY):
            raise InvalidArgument("server_group.policy must be AFFINITY or ANTI_AFFINITY")
        row = self.catalog.create_server_group(
            context.principal, v.name(g.name, "server_group.name"), g.policy, v.request_key(request)
        )
        return self.group_pb(row)

    def GetServerGroup(self, request: pb.GetServerGroupRequest, context: CallContext) -> pb.ServerGroup:
        return self.group_pb(self.catalog.get_server_group(context.principal, v.resource_id(request.id)))

    def ListServerGroups(
        self, request: pb.ListServerGroupsRequest, context: CallContext
    ) -> pb.ListServerGroupsResponse:
        if request.name:
            v.name(request.name)
        rows, token = self.catalog.list_server_groups(
            context.principal, request.page_size, request.page_token, request.name
        )
        return pb.ListServerGroupsResponse(server_groups=self.group_pbs(rows), next_page_token=token)

    def DeleteServerGroup(
        self, request: pb.DeleteServerGroupRequest, context: CallContext
    ) -> empty_pb2.Empty:
        self.catalog.delete_server_group(context.principal, v.resource_id(request.id))
        return empty_pb2.Empty()
