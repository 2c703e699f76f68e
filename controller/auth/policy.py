"""The policy table: for every RPC, who may call it. An RPC missing here is
refused (tests/test_policy.py checks every RPC of every service is listed).

OPEN  no token (login, node enrollment: they carry their own secret)
READER/MEMBER/ADMIN  a valid bearer token with at least that role on its project
NODE  a node's client certificate, on the mTLS node port only

Finer checks that depend on the resource (whose project it is, changing one's
own password) live in the domain code, which gets the principal."""

from __future__ import annotations

import enum

from controller.auth.principal import Role


class Rule(enum.Enum):
    OPEN = "open"
    READER = "reader"
    MEMBER = "member"
    ADMIN = "admin"
    NODE = "node"

    @property
    def min_role(self) -> Role | None:
        return {Rule.READER: Role.READER, Rule.MEMBER: Role.MEMBER, Rule.ADMIN: Role.ADMIN}.get(self)


def _service(name: str, rules: dict[str, Rule]) -> dict[str, Rule]:
    return {f"/kumo.v1.{name}/{method}": rule for method, rule in rules.items()}


POLICY: dict[str, Rule] = {
    **_service(
        "IdentityService",
        {
            "Authenticate": Rule.OPEN,
            "RevokeToken": Rule.READER,
            "GetCurrentIdentity": Rule.READER,
            "CreateProject": Rule.ADMIN,
            "GetProject": Rule.READER,
            "ListProjects": Rule.READER,
            "UpdateProject": Rule.ADMIN,
            "DeleteProject": Rule.ADMIN,
            # Members and readers see their own project's quota (domain check).
            "GetQuota": Rule.READER,
            "UpdateQuota": Rule.ADMIN,
            "CreateUser": Rule.ADMIN,
            "GetUser": Rule.READER,
            "ListUsers": Rule.READER,
            "UpdateUser": Rule.ADMIN,
            "DeleteUser": Rule.ADMIN,
            "SetUserPassword": Rule.READER,
            "CreateRoleAssignment": Rule.ADMIN,
            "ListRoleAssignments": Rule.READER,
            "DeleteRoleAssignment": Rule.ADMIN,
        },
    ),
    **_service(
        "ImageService",
        {
            # Whose image it is (private: own project; public: change by the
            # owner or admins only) is checked in domain/images.py.
            "CreateImage": Rule.MEMBER,
            "GetImage": Rule.READER,
            "ListImages": Rule.READER,
            "UpdateImage": Rule.MEMBER,
            "DeleteImage": Rule.MEMBER,
            "UploadImageData": Rule.MEMBER,
            "DownloadImageData": Rule.READER,
        },
    ),
    **_service("ControlPlaneService", {"ListControllers": Rule.ADMIN, "RotateTokenKey": Rule.ADMIN}),
    **_service(
        "NodeService",
        {
            "ListNodes": Rule.ADMIN,
            "GetNode": Rule.ADMIN,
            "DisableNode": Rule.ADMIN,
            "EnableNode": Rule.ADMIN,
            "DeleteNode": Rule.ADMIN,
            "RotateNodeCertificate": Rule.ADMIN,
            "DrainNode": Rule.ADMIN,
            "UndrainNode": Rule.ADMIN,
            "FenceNode": Rule.ADMIN,
            "UnfenceNode": Rule.ADMIN,
            "EvacuateNode": Rule.ADMIN,
            "CreateJoinToken": Rule.ADMIN,
            "ListJoinTokens": Rule.ADMIN,
            "DeleteJoinToken": Rule.ADMIN,
        },
    ),
    **_service(
        "NodeAgentService",
        {
            # The join token is the credential (checked in the domain); the CA
            # bundle is public.
            "GetCaBundle": Rule.OPEN,
            "Enroll": Rule.OPEN,
            "CheckCertificate": Rule.OPEN,
            "Session": Rule.NODE,
            "DownloadBlob": Rule.NODE,
            "UploadSnapshot": Rule.NODE,
            "ReportConsole": Rule.NODE,
            "ConsoleStream": Rule.NODE,
        },
    ),
    **_service(
        "ComputeService",
        {
            "CreateFlavor": Rule.ADMIN,
            "GetFlavor": Rule.READER,
            "ListFlavors": Rule.READER,
            "UpdateFlavor": Rule.ADMIN,
            "DeleteFlavor": Rule.ADMIN,
            "CreateKeypair": Rule.MEMBER,
            "GetKeypair": Rule.READER,
            "ListKeypairs": Rule.READER,
            "DeleteKeypair": Rule.MEMBER,
            "CreateServerGroup": Rule.MEMBER,
            "GetServerGroup": Rule.READER,
            "ListServerGroups": Rule.READER,
            "DeleteServerGroup": Rule.MEMBER,
            "CreateInstance": Rule.MEMBER,
            "GetInstance": Rule.READER,
            "ListInstances": Rule.READER,
            "DeleteInstance": Rule.MEMBER,
            "StartInstance": Rule.MEMBER,
            "StopInstance": Rule.MEMBER,
            "RebootInstance": Rule.MEMBER,
            "UpdateInstance": Rule.MEMBER,
            "GetConsoleOutput": Rule.READER,
            # READ_WRITE needs the member role (checked with the instance, domain/consoles.py).
            "AttachConsole": Rule.READER,
            "CreateInstanceSnapshot": Rule.MEMBER,
            # Moving a guest between hosts is the operator's call.
            "MigrateInstance": Rule.ADMIN,
            # Whose instance it is: domain/moves/ (another project's is missing).
            "ResizeInstance": Rule.MEMBER,
            "ConfirmResize": Rule.MEMBER,
            "RevertResize": Rule.MEMBER,
            "ListLiveMigrations": Rule.ADMIN,
            # A member cancels their resize; migrations need an admin (domain/moves/cancel.py).
            "CancelMigration": Rule.MEMBER,
        },
    ),
    **_service(
        "VolumeService",
        {
            # Whose volume or instance it is is checked in domain/volumes/.
            "CreateVolume": Rule.MEMBER,
            "GetVolume": Rule.READER,
            "ListVolumes": Rule.READER,
            "UpdateVolume": Rule.MEMBER,
            "DeleteVolume": Rule.MEMBER,
            "ExtendVolume": Rule.MEMBER,
            "AttachVolume": Rule.MEMBER,
            "DetachVolume": Rule.MEMBER,
            "CreateVolumeSnapshot": Rule.MEMBER,
            "GetVolumeSnapshot": Rule.READER,
            "ListVolumeSnapshots": Rule.READER,
            "DeleteVolumeSnapshot": Rule.MEMBER,
            "CreateVolumeType": Rule.ADMIN,
            "GetVolumeType": Rule.READER,
            "ListVolumeTypes": Rule.READER,
            "DeleteVolumeType": Rule.ADMIN,
        },
    ),
    **_service(
        "NetworkService",
        {
            # Whose network, port or group it is (shared networks: read and
            # make ports by every project; change by the owner) is checked in
            # domain/networks/; shared and external_routable are admin-only there.
            "CreateNetwork": Rule.MEMBER,
            "GetNetwork": Rule.READER,
            "ListNetworks": Rule.READER,
            "UpdateNetwork": Rule.MEMBER,
            "DeleteNetwork": Rule.MEMBER,
            "CreateSubnet": Rule.MEMBER,
            "GetSubnet": Rule.READER,
            "ListSubnets": Rule.READER,
            "UpdateSubnet": Rule.MEMBER,
            "DeleteSubnet": Rule.MEMBER,
            "CreatePort": Rule.MEMBER,
            "GetPort": Rule.READER,
            "ListPorts": Rule.READER,
            "UpdatePort": Rule.MEMBER,
            "DeletePort": Rule.MEMBER,
            "CreateSecurityGroup": Rule.MEMBER,
            "GetSecurityGroup": Rule.READER,
            "ListSecurityGroups": Rule.READER,
            "UpdateSecurityGroup": Rule.MEMBER,
            "DeleteSecurityGroup": Rule.MEMBER,
            "CreateSecurityGroupRule": Rule.MEMBER,
            "DeleteSecurityGroupRule": Rule.MEMBER,
            "CreateRouter": Rule.MEMBER,
            "GetRouter": Rule.READER,
            "ListRouters": Rule.READER,
            "UpdateRouter": Rule.MEMBER,
            "DeleteRouter": Rule.MEMBER,
            "AddRouterInterface": Rule.MEMBER,
            "RemoveRouterInterface": Rule.MEMBER,
            "CreateFloatingIp": Rule.MEMBER,
            "GetFloatingIp": Rule.READER,
            "ListFloatingIps": Rule.READER,
            "UpdateFloatingIp": Rule.MEMBER,
            "DeleteFloatingIp": Rule.MEMBER,
        },
    ),
    # Members and readers see their project's events; admins every project's.
    **_service("EventService", {"ListEvents": Rule.READER}),
}

# Infrastructure services every gRPC tool expects to reach without a token.
OPEN_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")
