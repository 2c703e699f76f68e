"""The composition root's promises: two controllers in one process share no
state, and no module of the controller keeps a mutable registry that features
fill in (features are wired in controller/assembly.py, nowhere else)."""

from __future__ import annotations

import ast
import sqlite3
from pathlib import Path

import grpc
import pytest

from controller.config import load_config
from controller.server import Controller
from kumo.v1 import identity_pb2 as idpb
from kumo.v1 import identity_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "two-controllers-pw"


def _login(ctl: Controller) -> tuple[grpc.Channel, list[tuple[str, str]]]:
    channel = grpc.secure_channel(f"127.0.0.1:{ctl.port}", grpc.ssl_channel_credentials(ctl.pki.ca.cert_pem))
    resp = identity_pb2_grpc.IdentityServiceStub(channel).Authenticate(
        idpb.AuthenticateRequest(user="admin", password=PASSWORD), timeout=30
    )
    return channel, [("authorization", f"Bearer {resp.token}")]


def _project_names(db_file: Path) -> set[str]:
    with sqlite3.connect(db_file) as conn:
        return {name for (name,) in conn.execute("SELECT name FROM project")}


def test_two_controllers_in_one_process_serve_only_their_own_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUMO_ADMIN_PASSWORD", PASSWORD)
    ctls = []
    for name in ("a", "b"):
        cfg = load_config(
            overrides={
                "data_dir": tmp_path / name,
                "listen": "127.0.0.1:0",
                "node_listen": "127.0.0.1:0",
                "metrics_listen": "127.0.0.1:0",
            },
            environ={},
        )
        ctls.append(Controller(cfg))
    a, b = ctls
    try:
        for ctl in ctls:
            ctl.start()
        assert a.parts.identity is not b.parts.identity
        (chan_a, auth_a), (chan_b, auth_b) = _login(a), _login(b)
        ident_a = identity_pb2_grpc.IdentityServiceStub(chan_a)
        ident_b = identity_pb2_grpc.IdentityServiceStub(chan_b)
        ident_a.CreateProject(idpb.CreateProjectRequest(project=idpb.Project(name="only-a")), metadata=auth_a)
        ident_b.CreateProject(idpb.CreateProjectRequest(project=idpb.Project(name="only-b")), metadata=auth_b)

        def names(stub: identity_pb2_grpc.IdentityServiceStub, auth: list[tuple[str, str]]) -> set[str]:
            resp = stub.ListProjects(idpb.ListProjectsRequest(page_size=100), metadata=auth)
            return {p.name for p in resp.projects}

        assert names(ident_a, auth_a) == {"admin", "only-a"}
        assert names(ident_b, auth_b) == {"admin", "only-b"}
        # The RPC threads wrote each controller's own file.
        assert _project_names(tmp_path / "a" / "kumo.db") == {"admin", "only-a"}
        assert _project_names(tmp_path / "b" / "kumo.db") == {"admin", "only-b"}
        # Each has its own signing key: a token of one means nothing to the other.
        with pytest.raises(grpc.RpcError) as err:
            ident_b.ListProjects(idpb.ListProjectsRequest(), metadata=auth_a)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        chan_a.close()
        chan_b.close()
    finally:
        for ctl in ctls:
            ctl.stop(grace=1)


MUTATORS = {
    "append",
    "extend",
    "insert",
    "add",
    "update",
    "setdefault",
    "pop",
    "popitem",
    "remove",
    "discard",
    "clear",
}
MUTABLE_CALLS = {"list", "dict", "set", "defaultdict", "deque", "OrderedDict", "Counter"}


def _module_mutables(tree: ast.Module) -> set[str]:
    """Names a module binds at its top level to a list, dict or set."""
    out: set[str] = set()
    for node in tree.body:
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        mutable = isinstance(
            value, ast.List | ast.Dict | ast.Set | ast.ListComp | ast.DictComp | ast.SetComp
        ) or (
            isinstance(value, ast.Call)
            and isinstance(value.func, ast.Name)
            and value.func.id in MUTABLE_CALLS
        )
        if mutable:
            out |= {t.id for t in targets if isinstance(t, ast.Name)}
    return out


def _final_name(expr: ast.expr) -> str:
    if isinstance(expr, ast.Name):
        return expr.id
    if isinstance(expr, ast.Attribute) and isinstance(expr.value, ast.Name):
        return expr.attr  # module.NAME
    return ""


def test_no_module_level_mutable_registry_in_the_controller() -> None:
    trees = {p: ast.parse(p.read_text()) for p in sorted((ROOT / "controller").rglob("*.py"))}
    mutables = set().union(*(_module_mutables(t) for t in trees.values()))
    found = []
    for path, tree in trees.items():
        where = path.relative_to(ROOT)
        for node in ast.walk(tree):
            if isinstance(node, ast.Global):
                found.append(f"{where}:{node.lineno}: global {', '.join(node.names)}")
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in MUTATORS
                and _final_name(node.func.value) in mutables
            ):
                found.append(f"{where}:{node.lineno}: {_final_name(node.func.value)}.{node.func.attr}(...)")
            elif isinstance(node, ast.Assign | ast.AugAssign | ast.Delete):
                targets = node.targets if isinstance(node, ast.Assign | ast.Delete) else [node.target]
                for t in targets:
                    if isinstance(t, ast.Subscript) and _final_name(t.value) in mutables:
                        found.append(f"{where}:{node.lineno}: {_final_name(t.value)}[...] changed")
                    elif isinstance(node, ast.AugAssign) and _final_name(t) in mutables:
                        found.append(f"{where}:{node.lineno}: {_final_name(t)} changed in place")
    assert not found, (
        "module-level state changed at run time (wire it in controller/assembly.py):\n" + "\n".join(found)
    )


METRIC_TYPES = {"Counter", "Gauge", "Histogram", "Summary", "Info", "Enum", "CollectorRegistry"}
# prometheus_client's process-wide state, which two controllers (or a test
# and the code it tests) would share.
GLOBAL_METRICS = {"REGISTRY", "start_http_server", "generate_latest", "push_to_gateway"}


def _call_name(node: ast.Call) -> str:
    return _final_name(node.func)


def test_metrics_live_on_injected_registries() -> None:
    """No metric or registry is made at module level, none uses
    prometheus_client's global REGISTRY (each metric names its registry),
    in the controller, the node daemon and the shared package."""
    paths = [
        p
        for folder in ("controller", "noded", "proto/kumo")
        for p in sorted((ROOT / folder).rglob("*.py"))
        if "_pb2" not in p.name
    ]
    found = []
    for path in paths:
        tree = ast.parse(path.read_text())
        where = path.relative_to(ROOT)
        for node in tree.body:
            value = node.value if isinstance(node, ast.Assign | ast.AnnAssign) else None
            if isinstance(value, ast.Call) and _call_name(value) in METRIC_TYPES:
                found.append(f"{where}:{node.lineno}: module-level {_call_name(value)}")
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("prometheus_client"):
                found += [
                    f"{where}:{node.lineno}: imports {a.name}" for a in node.names if a.name in GLOBAL_METRICS
                ]
            elif (
                isinstance(node, ast.Call)
                and _call_name(node) in METRIC_TYPES - {"CollectorRegistry"}
                and not any(k.arg == "registry" for k in node.keywords)
            ):
                found.append(f"{where}:{node.lineno}: {_call_name(node)} without registry= (the global one)")
    assert not found, "metrics must live on the registry the composition root makes:\n" + "\n".join(found)
