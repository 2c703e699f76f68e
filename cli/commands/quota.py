"""kumo quota show | set: a project's limits and usage per resource."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from google.protobuf import field_mask_pb2

from cli.commands import project as project_cmd
from cli.output import ColumnOpt, Format, OutputOpt, emit
from kumo.v1 import identity_pb2 as pb

app = typer.Typer(no_args_is_help=True)

# The QuotaValues fields, in the API's order.
RESOURCES = [f.name for f in pb.QuotaValues.DESCRIPTOR.fields]


def _limit(value: Any) -> str:
    return "unlimited" if value == -1 else str(value)


COLUMNS = [
    ("resource", "resource"),
    ("limit", "limit", _limit),
    ("used", "used"),
    ("default", "default", _limit),
]


def _rows(q: pb.Quota) -> list[dict[str, Any]]:
    return [
        {
            "resource": r,
            "limit": getattr(q.limits, r),
            "used": getattr(q.usage, r),
            "default": getattr(q.defaults, r),
        }
        for r in RESOURCES
    ]


def _project_id(s, ref: str | None) -> str:  # type: ignore[no-untyped-def]
    if not ref:
        return s.GetCurrentIdentity(pb.GetCurrentIdentityRequest()).project_id
    return project_cmd.find(s, ref).id


@app.command()
def show(
    project: Annotated[str | None, typer.Argument(help="Project name or id; default: your token's")] = None,
    output: OutputOpt = Format.table,
    column: ColumnOpt = None,
) -> None:
    """Show a project's limit and usage of each resource (-1 / unlimited: no limit)."""
    s = project_cmd.stub()
    emit(_rows(s.GetQuota(pb.GetQuotaRequest(project_id=_project_id(s, project)))), output, COLUMNS, column)


def _opt(resource: str) -> Any:
    return typer.Option(
        f"--{resource.replace('_', '-')}", metavar="N", help=f"Limit of {resource} (-1: unlimited)"
    )


@app.command("set")
def set_(
    project: str,
    instances: Annotated[int | None, _opt("instances")] = None,
    vcpus: Annotated[int | None, _opt("vcpus")] = None,
    ram_mb: Annotated[int | None, _opt("ram_mb")] = None,
    volumes: Annotated[int | None, _opt("volumes")] = None,
    volume_gb: Annotated[int | None, _opt("volume_gb")] = None,
    snapshots: Annotated[int | None, _opt("snapshots")] = None,
    images: Annotated[int | None, _opt("images")] = None,
    networks: Annotated[int | None, _opt("networks")] = None,
    ports: Annotated[int | None, _opt("ports")] = None,
    security_groups: Annotated[int | None, _opt("security_groups")] = None,
    floating_ips: Annotated[int | None, _opt("floating_ips")] = None,
    reset: Annotated[
        list[str] | None,
        typer.Option(metavar="RESOURCE", help="Back to the cloud default, e.g. --reset vcpus (repeatable)"),
    ] = None,
    output: OutputOpt = Format.table,
    column: ColumnOpt = None,
) -> None:
    """Set a project's own limits (admin); they override the cloud defaults (--reset goes back
    to a default). A limit below the project's usage is allowed and refuses new creates only."""
    given = {
        k: v
        for k, v in {
            "instances": instances,
            "vcpus": vcpus,
            "ram_mb": ram_mb,
            "volumes": volumes,
            "volume_gb": volume_gb,
            "snapshots": snapshots,
            "images": images,
            "networks": networks,
            "ports": ports,
            "security_groups": security_groups,
            "floating_ips": floating_ips,
        }.items()
        if v is not None
    }
    resets = [r.replace("-", "_") for r in reset or []]
    unknown = [r for r in resets if r not in RESOURCES]
    if unknown:
        raise typer.BadParameter(
            f"unknown resource {unknown[0]!r}; one of {', '.join(RESOURCES)}", param_hint="--reset"
        )
    both = set(resets) & set(given)
    if both:
        raise typer.BadParameter(f"{sorted(both)[0]} is both set and reset", param_hint="--reset")
    if not given and not resets:
        raise typer.BadParameter("give at least one limit, e.g. --instances 20, or --reset RESOURCE")
    s = project_cmd.stub()
    changed = pb.Quota(project_id=_project_id(s, project), limits=pb.QuotaValues(**given))
    paths = field_mask_pb2.FieldMask(paths=[f"limits.{k}" for k in [*given, *resets]])
    emit(
        _rows(s.UpdateQuota(pb.UpdateQuotaRequest(quota=changed, update_mask=paths))), output, COLUMNS, column
    )
