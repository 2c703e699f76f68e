"""The admin panel: nodes (capacity bars, enable/disable, a join token shown
once), projects, users, role assignments, flavors, quotas and the event log.
Every call is the admin's own; the API decides, the pages only hide what a
non-admin could not do."""

from __future__ import annotations

import uuid

from google.protobuf import duration_pb2, field_mask_pb2
from starlette.responses import Response
from starlette.routing import Route

from dashboard.charts import Bar, bars
from dashboard.listing import list_all
from dashboard.server_pages import QUOTA_ROWS, quota_chart
from dashboard.web import Ctx, Web
from kumo.v1 import compute_pb2 as cpb
from kumo.v1 import event_pb2 as epb
from kumo.v1 import identity_pb2 as idpb
from kumo.v1 import node_pb2 as npb

ROLES = {"reader": idpb.ROLE_READER, "member": idpb.ROLE_MEMBER, "admin": idpb.ROLE_ADMIN}


def ratio(r: float) -> str:
    return f" x{r:g}" if r and r != 1 else ""


def capacity(node: npb.Node) -> str:
    """Claimed vs allocatable as the scheduler counts them (inventory times the
    allocation ratio, shown when not 1); from the host's own figures only
    when the controller sends no allocation."""
    if node.HasField("allocation"):
        a = node.allocation
        items = [
            Bar(f"vCPU{ratio(a.cpu_allocation_ratio)}", a.allocated_vcpus, a.allocatable_vcpus),
            Bar(f"RAM{ratio(a.ram_allocation_ratio)}", a.allocated_memory_mb, a.allocatable_memory_mb, "MiB"),
            Bar(f"disk{ratio(a.disk_allocation_ratio)}", a.allocated_disk_gb, a.allocatable_disk_gb, "GiB"),
        ]
    else:
        inv, use = node.inventory, node.usage
        items = [
            Bar("vCPU", use.guest_vcpus, inv.vcpus),
            Bar("RAM", use.guest_memory_mb, inv.memory_mb, "MiB"),
            Bar("disk", max(inv.disk_gb - use.disk_free_gb, 0), inv.disk_gb, "GiB"),
        ]
    return bars(items, width=440)


def routes(web: Web) -> list[Route]:
    def node_table(ctx: Ctx) -> dict:
        page = ctx.page_of(ctx.api.nodes.ListNodes, npb.ListNodesRequest(), "nodes", "/admin/nodes")
        return {"page": page, "nodes": page.items, "charts": {n.id: capacity(n) for n in page.items}}

    def nodes(ctx: Ctx, token: npb.CreateJoinTokenResponse | None = None) -> Response:
        return ctx.render("admin_nodes.html", token=token, **node_table(ctx))

    def node_rows(ctx: Ctx) -> Response:
        """The node table's rows alone: htmx polls them, so states and bars change without a reload."""
        return ctx.render("_node_rows.html", **node_table(ctx))

    def node_action(ctx: Ctx) -> Response:
        nid, verb = ctx.params["id"], ctx.params["action"]
        if verb == "disable":
            ctx.api.nodes.DisableNode(npb.DisableNodeRequest(id=nid, reason=ctx.form.get("reason")))
        elif verb == "enable":
            ctx.api.nodes.EnableNode(npb.EnableNodeRequest(id=nid))
        else:
            return ctx.web.error(
                ctx.request, ctx.session, "action: one of disable, enable [INVALID_ARGUMENT]", 400
            )
        return ctx.redirect("/admin/nodes", f"node {verb}d")

    def join_token(ctx: Ctx) -> Response:
        hours = ctx.form.integer("ttl_hours", 1, 24 * 30, 1)
        resp = ctx.api.nodes.CreateJoinToken(
            npb.CreateJoinTokenRequest(
                join_token=npb.JoinToken(
                    description=ctx.form.get("description"), max_uses=ctx.form.integer("max_uses", 1, 1000, 1)
                ),
                ttl=duration_pb2.Duration(seconds=hours * 3600),
                request_id=str(uuid.uuid4()),
            )
        )
        return nodes(ctx, resp)  # shown on this answer only: the API keeps only its hash

    def projects(ctx: Ctx) -> Response:
        api = ctx.api
        return ctx.render(
            "admin_projects.html",
            projects=list_all(api.identity.ListProjects, idpb.ListProjectsRequest(), "projects"),
            users=list_all(api.identity.ListUsers, idpb.ListUsersRequest(), "users"),
            assignments=list_all(
                api.identity.ListRoleAssignments, idpb.ListRoleAssignmentsRequest(), "role_assignments"
            ),
        )

    def create_project(ctx: Ctx) -> Response:
        p = ctx.api.identity.CreateProject(
            idpb.CreateProjectRequest(project=idpb.Project(name=ctx.form.required("name", 63)))
        )
        return ctx.redirect("/admin/projects", f"project {p.name} created")

    def create_user(ctx: Ctx) -> Response:
        f = ctx.form
        u = ctx.api.identity.CreateUser(
            idpb.CreateUserRequest(
                user=idpb.User(name=f.required("name", 63), default_project_id=f.get("project")),
                password=f.required("password", 1024),
                request_id=str(uuid.uuid4()),
            )
        )
        return ctx.redirect("/admin/projects", f"user {u.name} created")

    def assign(ctx: Ctx) -> Response:
        f = ctx.form
        ctx.api.identity.CreateRoleAssignment(
            idpb.CreateRoleAssignmentRequest(
                user_id=f.required("user"), project_id=f.required("project"), role=f.choice("role", ROLES)
            )
        )
        return ctx.redirect("/admin/projects", "role assigned")

    def flavors(ctx: Ctx) -> Response:
        rows = list_all(ctx.api.compute.ListFlavors, cpb.ListFlavorsRequest(), "flavors")
        return ctx.render("admin_flavors.html", flavors=rows)

    def create_flavor(ctx: Ctx) -> Response:
        f = ctx.form
        fl = ctx.api.compute.CreateFlavor(
            cpb.CreateFlavorRequest(
                flavor=cpb.Flavor(
                    name=f.required("name", 63),
                    vcpus=f.integer("vcpus", 1, 1024),
                    ram_mb=f.integer("ram_mb", 16, 4 * 1024 * 1024),
                    disk_gb=f.integer("disk_gb", 0, 65536),
                    is_public=True,
                )
            )
        )
        return ctx.redirect("/admin/flavors", f"flavor {fl.name} created")

    def delete_flavor(ctx: Ctx) -> Response:
        ctx.api.compute.DeleteFlavor(cpb.DeleteFlavorRequest(id=ctx.params["id"]))
        return ctx.redirect("/admin/flavors", "flavor deleted")

    def quotas(ctx: Ctx) -> Response:
        api = ctx.api
        projects = list_all(api.identity.ListProjects, idpb.ListProjectsRequest(), "projects")
        pid = ctx.request.query_params.get("project") or ctx.session.who.project_id
        quota = api.identity.GetQuota(idpb.GetQuotaRequest(project_id=pid))
        return ctx.render(
            "admin_quotas.html", projects=projects, quota=quota, chart=quota_chart(quota), rows=QUOTA_ROWS
        )

    def update_quota(ctx: Ctx) -> Response:
        pid = ctx.form.required("project")
        limits = idpb.QuotaValues()
        paths = []
        for field, _, _ in QUOTA_ROWS:
            if ctx.form.get(field):
                setattr(limits, field, ctx.form.integer(field, -1, 2**31 - 1))
                paths.append(f"limits.{field}")
        ctx.api.identity.UpdateQuota(
            idpb.UpdateQuotaRequest(
                quota=idpb.Quota(project_id=pid, limits=limits),
                update_mask=field_mask_pb2.FieldMask(paths=paths),
            )
        )
        return ctx.redirect(f"/admin/quotas?project={pid}", "quota updated")

    def events(ctx: Ctx) -> Response:
        request = epb.ListEventsRequest(resource_type=ctx.request.query_params.get("type", ""))
        page = ctx.page_of(ctx.api.events.ListEvents, request, "events")
        return ctx.render("admin_events.html", events=page.items, page=page)

    return [
        Route("/admin/nodes", web.page(nodes)),
        Route("/admin/nodes/rows", web.page(node_rows)),
        Route("/admin/nodes/join-token", web.page(join_token), methods=["POST"]),
        Route("/admin/nodes/{id}/{action}", web.page(node_action), methods=["POST"]),
        Route("/admin/projects", web.page(projects)),
        Route("/admin/projects", web.page(create_project), methods=["POST"]),
        Route("/admin/users", web.page(create_user), methods=["POST"]),
        Route("/admin/roles", web.page(assign), methods=["POST"]),
        Route("/admin/flavors", web.page(flavors)),
        Route("/admin/flavors", web.page(create_flavor), methods=["POST"]),
        Route("/admin/flavors/{id}/delete", web.page(delete_flavor), methods=["POST"]),
        Route("/admin/quotas", web.page(quotas)),
        Route("/admin/quotas", web.page(update_quota), methods=["POST"]),
        Route("/admin/events", web.page(events)),
    ]
