"""kumo node list | show | disable | enable | drain | undrain | fence | unfence | evacuate | delete,
and kumo node token create | list | delete."""

from __future__ import annotations

import re
import time
from typing import Annotated

import typer
from google.protobuf import duration_pb2

from cli.client import PAGE_SIZE, list_all, resolve, session
from cli.commands import migration as migration_cmd
from cli.errors import CliError
from cli.output import ColumnOpt, Format, NameFilter, OutputOpt, deleted, emit
from cli.waiting import DEFAULT_TIMEOUT, TimeoutOpt, WaitOpt
from kumo.v1 import compute_pb2 as cpb
from kumo.v1 import compute_pb2_grpc, node_pb2_grpc
from kumo.v1 import node_pb2 as pb

app = typer.Typer(no_args_is_help=True)
token_app = typer.Typer(no_args_is_help=True)
app.add_typer(token_app, name="token", help="Join tokens that let new hosts enroll.")

COLUMNS = [
    ("id", "id"),
    ("name", "name"),
    ("state", "state"),
    ("fenced", "fenced"),
    ("vcpus", "inventory.vcpus"),
    ("memory MiB", "inventory.memory_mb"),
    ("disk GiB", "inventory.disk_gb"),
    ("virt", "inventory.virt_type"),
    ("guests", "usage.guests_running"),
    ("last heartbeat", "last_heartbeat_time"),
]
DETAIL = [
    ("id", "id"),
    ("name", "name"),
    ("state", "state"),
    ("disabled reason", "disabled_reason"),
    ("maintenance", "maintenance"),
    ("drain", "drain.state"),
    ("drain migrated", "drain.migrated"),
    ("drain failed", "drain.failed"),
    ("drain cold started", "drain.cold_started"),
    ("migration address", "inventory.migration_address"),
    ("fenced", "fenced"),
    ("fenced at", "fence_time"),
    ("connected", "connected"),
    ("controller", "controller_id"),
    ("address", "address"),
    ("hostname", "inventory.hostname"),
    ("vcpus", "inventory.vcpus"),
    ("memory MiB", "inventory.memory_mb"),
    ("disk GiB", "inventory.disk_gb"),
    ("virt type", "inventory.virt_type"),
    ("driver", "inventory.driver"),
    ("arch", "inventory.arch"),
    ("cpu model", "inventory.cpu_model"),
    ("libvirt", "inventory.libvirt_version"),
    ("qemu", "inventory.qemu_version"),
    ("agent", "inventory.agent_version"),
    ("kernel", "inventory.kernel"),
    ("memory free MiB", "usage.memory_free_mb"),
    ("disk free GiB", "usage.disk_free_gb"),
    ("load", "usage.load_1m"),
    ("guests running", "usage.guests_running"),
    ("vcpus allocated", "allocation.allocated_vcpus"),
    ("vcpus allocatable", "allocation.allocatable_vcpus"),
    ("memory MiB allocated", "allocation.allocated_memory_mb"),
    ("memory MiB allocatable", "allocation.allocatable_memory_mb"),
    ("disk GiB allocated", "allocation.allocated_disk_gb"),
    ("disk GiB allocatable", "allocation.allocatable_disk_gb"),
    ("last heartbeat", "last_heartbeat_time"),
    ("desired revision", "desired_revision"),
    ("applied revision", "applied_revision"),
    ("certificate serial", "certificate_serial"),
    ("certificate expires", "certificate_expire_time"),
    ("join token", "join_token_id"),
    ("created", "create_time"),
    ("updated", "update_time"),
]
EVACUATION_COLUMNS = [
    ("server", "instance_name"),
    ("id", "instance_id"),
    ("outcome", "outcome"),
    ("to node", "target_node_id"),
    ("message", "message"),
]
TOKEN_COLUMNS = [
    ("id", "id"),
    ("state", "state"),
    ("uses", "uses"),
    ("max uses", "max_uses"),
    ("expires", "expire_time"),
    ("description", "description"),
]

_TTL_RE = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_ttl(text: str) -> int:
    """'1h', '30m', '1h30m', '2d', '90s' or plain seconds -> seconds."""
    text = text.strip().lower()
    if text.isdigit():
        return int(text)
    m = _TTL_RE.match(text)
    if not text or not m or not any(m.groups()):
        raise CliError(f"--ttl {text!r} is not a duration: use e.g. 90s, 30m, 1h, 1h30m, 2d")
    d, h, mi, s = (int(g or 0) for g in m.groups())
    return d * 86400 + h * 3600 + mi * 60 + s


def stub():  # type: ignore[no-untyped-def]
    return session().stub(node_pb2_grpc.NodeServiceStub)


def compute_stub():  # type: ignore[no-untyped-def]
    return session().stub(compute_pb2_grpc.ComputeServiceStub)


def find(s, ref: str) -> pb.Node:  # type: ignore[no-untyped-def]
    return resolve(
        "node",
        ref,
        lambda i: s.GetNode(pb.GetNodeRequest(id=i)),
        lambda n: list(s.ListNodes(pb.ListNodesRequest(name=n)).nodes),
    )


@app.command("list")
def list_(name: NameFilter = None, output: OutputOpt = Format.table, column: ColumnOpt = None) -> None:
    """List the nodes (admin)."""
    req = pb.ListNodesRequest(page_size=PAGE_SIZE, name=name or "")
    emit(list_all(stub().ListNodes, req, "nodes"), output, COLUMNS, column)


@app.command()
def show(node: str, output: OutputOpt = Format.table, column: ColumnOpt = None) -> None:
    """Show a node by name or id (admin)."""
    emit(find(stub(), node), output, DETAIL, column)


@app.command()
def disable(
    node: str,
    reason: Annotated[str, typer.Option(help="Why (shown with the node)")] = "",
    output: OutputOpt = Format.table,
    column: ColumnOpt = None,
) -> None:
    """Take a node out of scheduling; its guests keep running (admin)."""
    s = stub()
    n = find(s, node)
    emit(s.DisableNode(pb.DisableNodeRequest(id=n.id, reason=reason)), output, DETAIL, column)


@app.command()
def enable(node: str, output: OutputOpt = Format.table, column: ColumnOpt = None) -> None:
    """Put a disabled node back into scheduling (admin)."""
    s = stub()
    n = find(s, node)
    emit(s.EnableNode(pb.EnableNodeRequest(id=n.id)), output, DETAIL, column)


@app.command()
def drain(
    node: str,
    cold: Annotated[
        bool, typer.Option("--cold", help="Cold-migrate the guests that cannot go live (stopped ones)")
    ] = False,
    wait_: WaitOpt = False,
    timeout: TimeoutOpt = DEFAULT_TIMEOUT,
    output: OutputOpt = Format.table,
    column: ColumnOpt = None,
) -> None:
    """Put a node in maintenance and live-migrate its guests off (admin); --cold moves the
    ones that cannot go live cold; --wait shows each guest."""
    s = stub()
    n = s.DrainNode(pb.DrainNodeRequest(id=find(s, node).id, cold=cold))
    if wait_:
        n = _follow_drain(n, timeout)
    emit(n, output, DETAIL, column)


def _follow_drain(n: pb.Node, timeout: float) -> pb.Node:
    """Polls the drain until it ends, a line per guest whose migration changed."""
    s, compute = stub(), compute_stub()
    deadline = time.monotonic() + timeout if timeout else None
    shown: dict[str, str] = {}
    began = n.drain.start_time.ToNanoseconds()
    while True:
        for m in migration_cmd.migrations(compute, node_id=n.id):
            if m.drain_node_id != n.id or m.create_time.ToNanoseconds() < began:
                continue
            text = migration_cmd.line(m)
            if shown.get(m.id) != text:
                typer.echo(f"{n.name}: server {m.instance_id}: {text}", err=True)
                shown[m.id] = text
        if n.drain.cold_started:  # cold moves: the guests still on the node, as they move
            req = cpb.ListInstancesRequest(
                page_size=PAGE_SIZE, node_id=n.id, state=cpb.INSTANCE_STATE_MIGRATING
            )
            for inst in compute.ListInstances(req).instances:
                if shown.get(inst.id) != "cold":
                    typer.echo(f"{n.name}: server {inst.id}: cold migration under way", err=True)
                    shown[inst.id] = "cold"
        if n.drain.state != pb.NODE_DRAIN_STATE_DRAINING:
            if n.drain.state != pb.NODE_DRAIN_STATE_DRAINED:
                state = pb.NodeDrainState.Name(n.drain.state).removeprefix("NODE_DRAIN_STATE_").lower()
                raise CliError(
                    f"drain of node {n.name} ended {state}: {n.drain.failed} guest(s) could not move"
                )
            return n
        if deadline is not None and time.monotonic() > deadline:
            raise CliError(f"node {n.name} is still draining after {timeout:.0f} s")
        time.sleep(0.5)
        n = s.GetNode(pb.GetNodeRequest(id=n.id))


@app.command()
def undrain(node: str, output: OutputOpt = Format.table, column: ColumnOpt = None) -> None:
    """Return a node in maintenance to service; guests do not move back (admin)."""
    s = stub()
    emit(s.UndrainNode(pb.UndrainNodeRequest(id=find(s, node).id)), output, DETAIL, column)


@app.command()
def fence(node: str, output: OutputOpt = Format.table, column: ColumnOpt = None) -> None:
    """Declare a DOWN node fenced: you have powered it off (IPMI, PDU) and it
    runs nothing. It is refused a session until `unfence`, and its servers may
    be evacuated (admin)."""
    s = stub()
    n = find(s, node)
    emit(s.FenceNode(pb.FenceNodeRequest(id=n.id)), output, DETAIL, column)


@app.command()
def unfence(node: str, output: OutputOpt = Format.table, column: ColumnOpt = None) -> None:
    """Re-admit a fenced node: it reconnects and removes the guests that were
    moved away meanwhile (admin)."""
    s = stub()
    n = find(s, node)
    emit(s.UnfenceNode(pb.UnfenceNodeRequest(id=n.id)), output, DETAIL, column)


@app.command()
def evacuate(
    node: str,
    rebuild_local: Annotated[
        bool,
        typer.Option(
            "--rebuild-local",
            help="Rebuild servers whose root disk was on the node from their image (that disk is lost)",
        ),
    ] = False,
    target: Annotated[
        str | None,
        typer.Option("--node", help="Move them to this node (name or id); default: the scheduler's pick"),
    ] = None,
    output: OutputOpt = Format.table,
    column: ColumnOpt = None,
) -> None:
    """Restart every server of a fenced node on other nodes (admin); prints what
    happened to each (moved, rebuilt, failed and why)."""
    s = stub()
    n = find(s, node)
    req = pb.EvacuateNodeRequest(id=n.id, rebuild_local_disks=rebuild_local)
    if target:
        req.target_node_id = find(s, target).id
    done = s.EvacuateNode(req).evacuations
    emit(list(done), output, EVACUATION_COLUMNS, column)
    if any(e.outcome == pb.EVACUATION_OUTCOME_FAILED for e in done):
        raise typer.Exit(1)


@app.command("rotate-certificate")
def rotate_certificate(node: str, output: OutputOpt = Format.table, column: ColumnOpt = None) -> None:
    """Have a node renew its certificate now, with a fresh key (admin). It does
    so through its session; its old certificate is refused once the new one is in use."""
    s = stub()
    n = find(s, node)
    emit(s.RotateNodeCertificate(pb.RotateNodeCertificateRequest(id=n.id)), output, DETAIL, column)


@app.command()
def delete(node: str) -> None:
    """Forget a node that is disabled or down; its certificate stops working (admin)."""
    s = stub()
    n = find(s, node)
    s.DeleteNode(pb.DeleteNodeRequest(id=n.id))
    deleted("node", n)


@token_app.command("create")
def token_create(
    ttl: Annotated[str, typer.Option(help="How long it is valid: 90s, 30m, 1h, 2d")] = "1h",
    uses: Annotated[int, typer.Option(help="How many nodes may join with it")] = 1,
    description: Annotated[str, typer.Option(help="Free text")] = "",
    output: OutputOpt = Format.table,
    column: ColumnOpt = None,
) -> None:
    """Make a join token and print it (shown once) (admin)."""
    if uses < 1:
        raise CliError("--uses must be at least 1")
    s = session()
    resp = s.stub(node_pb2_grpc.NodeServiceStub).CreateJoinToken(
        pb.CreateJoinTokenRequest(
            join_token=pb.JoinToken(description=description, max_uses=uses),
            ttl=duration_pb2.Duration(seconds=parse_ttl(ttl)),
        )
    )
    if output is Format.table:
        typer.echo(resp.token)
        jt = resp.join_token
        typer.echo(
            f"token {jt.id}: {jt.max_uses} use(s), expires {jt.expire_time.ToJsonString()}. On the new host:\n"
            f"  kumo-noded join {s.endpoint} <token>",
            err=True,
        )
        return
    emit(resp, output, [], column)


@token_app.command("list")
def token_list(output: OutputOpt = Format.table, column: ColumnOpt = None) -> None:
    """List join tokens (their secrets are never shown again) (admin)."""
    s = stub()
    emit(
        list_all(s.ListJoinTokens, pb.ListJoinTokensRequest(page_size=PAGE_SIZE), "join_tokens"),
        output,
        TOKEN_COLUMNS,
        column,
    )


@token_app.command("delete")
def token_delete(token_id: Annotated[str, typer.Argument(help="The token's id")]) -> None:
    """Delete a join token so it cannot be used (admin)."""
    stub().DeleteJoinToken(pb.DeleteJoinTokenRequest(id=token_id))
    typer.echo(f"deleted join token {token_id}")
