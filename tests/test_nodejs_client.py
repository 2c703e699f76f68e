"""The Node.js example client (examples/nodejs) against a real controller.

It proves the API is usable from the .proto files alone: the client loads
proto/kumo/v1/*.proto at run time with @grpc/proto-loader, trusts the CA,
logs in and lists. What it prints must equal what the Python CLI prints.
Node.js and npm are required (scripts/apt-packages.txt installs them); a
missing one fails the test with a clear message, it is never skipped."""

from __future__ import annotations

import base64
import datetime
import importlib
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from google.protobuf import descriptor_pool, message_factory
from google.protobuf.json_format import MessageToDict, ParseDict
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from cli.output import to_data
from kumo.v1 import compute_pb2, image_pb2
from kumo.v1 import identity_pb2 as idpb
from tests.harness import ADMIN_PASSWORD, ROOT, Client, ControllerProc, make_user, run_cli

EXAMPLE = ROOT / "examples" / "nodejs"
PROTO_DIR = ROOT / "proto" / "kumo" / "v1"
# resource (the List response field) -> (List method, the Python CLI's sub-app names to try).
# compute.proto calls servers "instances"; the CLI may say `kumo server`.
RESOURCES = {
    "projects": ("ListProjects", ("project",)),
    "images": ("ListImages", ("image",)),
    "instances": ("ListInstances", ("server", "instance")),
}
# The CLI's JSON is its own (docs/cli.md: enums lower-case, int64 as numbers): each item the Node.js
# client prints (proto3 JSON) is parsed back into its message and converted the CLI's one way.
ITEM_TYPES = {"projects": idpb.Project, "images": image_pb2.Image, "instances": compute_pb2.Instance}


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(
            f"{tool} is not installed: the Node.js client test needs Node.js >= 18 and npm "
            "(scripts/apt-packages.txt lists nodejs and npm; run 'make host' or 'apt-get install nodejs npm')"
        )
    return path


@pytest.fixture(scope="module")
def node() -> str:
    node = _need("node")
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    major = int(version.lstrip("v").split(".")[0])
    if major < 18:
        pytest.fail(f"Node.js {version} is too old: the example needs >= 18")
    if (
        not (EXAMPLE / "node_modules" / "@grpc" / "grpc-js" / "package.json").exists()
        or not (EXAMPLE / "node_modules" / "@grpc" / "proto-loader" / "package.json").exists()
    ):
        npm = _need("npm")
        result = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=EXAMPLE,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if result.returncode != 0:
            pytest.fail(
                f"npm ci in {EXAMPLE} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
            )
    return node


def in_protos(method: str) -> bool:
    """Whether some kumo.v1 service in the .proto files has this RPC."""
    pattern = re.compile(rf"\brpc\s+{method}\s*\(")
    return any(pattern.search(p.read_text()) for p in PROTO_DIR.glob("*.proto"))


def answers(controller: ControllerProc, token: str, method: str) -> bool:
    """Whether the controller really serves a List method: found by server
    reflection (as a generic tool finds it) and not UNIMPLEMENTED when called."""
    channel = controller.channel()
    try:
        db = ProtoReflectionDescriptorDatabase(channel)
        pool = descriptor_pool.DescriptorPool(db)
        for service in db.get_services():
            found = pool.FindServiceByName(service).methods_by_name.get(method)
            if found is None or not service.startswith("kumo.v1."):
                continue
            request = message_factory.GetMessageClass(found.input_type)()
            call = channel.unary_unary(f"/{service}/{method}", request_serializer=request.SerializeToString)
            try:
                call(request, metadata=[("authorization", f"Bearer {token}")], timeout=30)
            except grpc.RpcError as exc:
                return exc.code() != grpc.StatusCode.UNIMPLEMENTED
            return True
        return False
    finally:
        channel.close()


def node_env(controller: ControllerProc, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUMO_")}
    env.update({"KUMO_ENDPOINT": controller.endpoint, "KUMO_CA_FILE": controller.ca_file, **extra})
    return env


def run_node(node: str, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [node, "client.js", *args], cwd=EXAMPLE, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def cli_as(controller: ControllerProc, tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Any]:
    """Logs the Python CLI in as a user (own config dir) and runs `kumo ... -o json`."""

    def login(user: str, password: str, project: str = "") -> Callable[..., Any]:
        env = {"KUMO_CONFIG_DIR": str(tmp_path_factory.mktemp("kumo-config"))}
        args = ["login", "--endpoint", controller.endpoint, "--ca-file", controller.ca_file]
        args += ["--user", user, "--password-stdin"] + (["--project", project] if project else [])
        result = run_cli(args, env, input=password + "\n")
        assert result.returncode == 0, result.stderr

        def run(sub_apps: tuple[str, ...], *cmd: str) -> Any:
            """`kumo SUB CMD -o json` with the first of sub_apps the CLI has."""
            for sub in sub_apps:
                out = run_cli([sub, *cmd, "-o", "json"], env)
                if out.returncode == 0:
                    return json.loads(out.stdout)
                if "No such command" not in out.stderr:
                    break
            raise AssertionError(f"kumo {'|'.join(sub_apps)} {' '.join(cmd)}: {out.stderr}")

        return run

    return login


@pytest.fixture(scope="module")
def projects(admin: Client) -> list[idpb.Project]:
    """Enough projects that a page size of 2 needs several pages."""
    return [
        admin.identity.CreateProject(
            idpb.CreateProjectRequest(
                project=idpb.Project(name=f"node-{i}", description=f"from the node test {i}")
            )
        )
        for i in range(4)
    ]


@pytest.fixture(scope="module")
def images(admin: Client) -> list[Any]:
    """A few images (with properties: a map field) when the image API is served; else none."""
    try:
        image_pb2 = importlib.import_module("kumo.v1.image_pb2")
        image_pb2_grpc = importlib.import_module("kumo.v1.image_pb2_grpc")
    except ImportError:
        return []
    stub = admin.stub(image_pb2_grpc.ImageServiceStub)
    made = []
    for i in range(3):
        image = image_pb2.Image(
            name=f"node-image-{i}",
            disk_format=image_pb2.DISK_FORMAT_QCOW2,
            properties={"os": "debian", "index": str(i)},
        )
        try:
            made.append(stub.CreateImage(image_pb2.CreateImageRequest(image=image)))
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                return []  # in the .proto files, not served yet: the list test checks the skip
            raise
    return made


def compare_with_cli(out: dict[str, Any], cli: Callable[..., Any], served: Callable[[str], bool]) -> None:
    """Each resource the controller serves equals the CLI's `list -o json`; any
    other one is reported under "skipped" with the reason (never left out silently)."""
    for resource, (method, sub_apps) in RESOURCES.items():
        if not in_protos(method) or not served(method):
            assert resource not in out, out
            assert method in out["skipped"][resource], out["skipped"]
            continue
        assert resource not in out["skipped"], out["skipped"]
        expected = cli(sub_apps, "list")
        got = [to_data(ParseDict(item, ITEM_TYPES[resource]())) for item in out[resource]]
        assert sorted(got, key=lambda r: r["id"]) == sorted(expected, key=lambda r: r["id"]), resource


def test_lists_match_the_python_cli(
    node: str, controller: ControllerProc, admin: Client, projects, images, cli_as
) -> None:  # type: ignore[no-untyped-def]
    env = node_env(controller, KUMO_USER="admin", KUMO_PASSWORD=ADMIN_PASSWORD, KUMO_PAGE_SIZE="2")
    result = run_node(node, ["list"], env)
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr, result.stderr
    out = json.loads(result.stdout)
    assert out["identity"]["user_name"] == "admin" and out["identity"]["role"] == "ROLE_ADMIN"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", out["identity"]["expire_time"])

    names = {p["name"] for p in out["projects"]}
    assert {p.name for p in projects} | {"admin"} <= names
    assert out["pages"]["projects"] >= 3  # 5+ projects at 2 a page: next_page_token was followed
    assert len({p["id"] for p in out["projects"]}) == len(out["projects"])  # no page twice
    if images:
        assert {i.name for i in images} <= {i["name"] for i in out["images"]}
        assert out["pages"]["images"] >= 2

    compare_with_cli(out, cli_as("admin", ADMIN_PASSWORD), lambda m: answers(controller, admin.token, m))


def test_member_scoped_to_a_project(
    node: str, controller: ControllerProc, admin: Client, projects, cli_as
) -> None:  # type: ignore[no-untyped-def]
    project = projects[1]
    make_user(admin, project.id, "node-member", idpb.ROLE_MEMBER, password="node-member-pw")
    env = node_env(
        controller, KUMO_USER="node-member", KUMO_PASSWORD="node-member-pw", KUMO_PROJECT=project.name
    )
    result = run_node(node, ["list"], env)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["identity"]["project_id"] == project.id and out["identity"]["role"] == "ROLE_MEMBER"
    compare_with_cli(
        out,
        cli_as("node-member", "node-member-pw", project.name),
        lambda m: answers(controller, admin.token, m),
    )


def test_unauthenticated_call_gets_token_missing(node: str, controller: ControllerProc) -> None:
    result = run_node(node, ["unauth"], node_env(controller))
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["code"] == 16 and out["code_name"] == "UNAUTHENTICATED", out
    assert out["error_info"]["reason"] == "TOKEN_MISSING", out
    assert out["error_info"]["domain"] == "kumo.cloud", out
    assert "authorization" in out["message"], out


def test_wrong_password_is_reported_with_its_reason(node: str, controller: ControllerProc) -> None:
    env = node_env(controller, KUMO_USER="admin", KUMO_PASSWORD="not-the-password")
    result = run_node(node, ["list"], env)
    assert result.returncode == 1
    assert result.stdout == ""
    assert "UNAUTHENTICATED" in result.stderr and "[INVALID_CREDENTIALS]" in result.stderr, result.stderr


def test_wrong_ca_is_refused(node: str, controller: ControllerProc, tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "not-kumo")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    other_ca = tmp_path / "other-ca.crt"
    other_ca.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    env = node_env(controller, KUMO_CA_FILE=str(other_ca), KUMO_PASSWORD=ADMIN_PASSWORD)
    result = run_node(node, ["list"], env)
    assert result.returncode == 1
    assert "UNAVAILABLE" in result.stderr, result.stderr


# The client's proto3 JSON equals Python's for every List item type in the .proto
# files, including those the controller does not serve yet (int64, maps, enums,
# timestamps, nested and repeated messages).

NODE_CONVERT = """
const { Kumo, toJson } = require('./client.js');
const input = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const kumo = new Kumo({ endpoint: 'unused:1', caFile: '', protoDir: process.env.KUMO_PROTO_DIR });
const out = {};
for (const [method, field, b64] of input) {
  const svc = Object.values(kumo.protos.definition).find((v) => v && v[method] && v[method].path);
  const resp = svc[method].responseDeserialize(Buffer.from(b64, 'base64'));
  out[method] = resp[field].map((item) => toJson(kumo.index, kumo.itemType(method, field), item));
}
kumo.close();
process.stdout.write(JSON.stringify(out));
"""


_TIMES = itertools.cycle(
    ["2024-01-02T03:04:05Z", "2024-01-02T03:04:05.120Z", "2024-01-02T03:04:05.123456789Z"]
)


def _fill(msg: Any, depth: int = 0) -> None:
    """Sets every field of msg to a non-default value (one oneof member each)."""
    seen_oneofs: set[str] = set()
    for f in msg.DESCRIPTOR.fields:
        if f.containing_oneof is not None:
            if f.containing_oneof.name in seen_oneofs:
                continue
            seen_oneofs.add(f.containing_oneof.name)
        value = getattr(msg, f.name)
        mt = f.message_type
        if mt is not None and mt.GetOptions().map_entry:
            vf = mt.fields_by_name["value"]
            if vf.message_type is not None:
                if depth < 3:
                    _fill(value["k1"], depth + 1)
            else:
                value["k1"] = _scalar(vf)
                value["k2"] = _scalar(vf)
        elif mt is not None:
            if mt.full_name == "google.protobuf.Timestamp":
                items = [value.add() for _ in range(2)] if f.is_repeated else [value]
                for ts in items:
                    ts.FromJsonString(next(_TIMES))
            elif depth < 3:
                for item in [value.add() for _ in range(2)] if f.is_repeated else [value]:
                    _fill(item, depth + 1)
                if not f.is_repeated:
                    value.SetInParent()  # set even when the message type has no fields
        elif f.is_repeated:
            value.extend([_scalar(f), _scalar(f)])
        else:
            setattr(msg, f.name, _scalar(f))


def _scalar(f: Any) -> Any:
    t = f.type
    if t == f.TYPE_STRING:
        return f"v-{f.name}"
    if t == f.TYPE_BYTES:
        return b"\x00\x01bytes"
    if t == f.TYPE_BOOL:
        return True
    if t == f.TYPE_ENUM:
        return f.enum_type.values[-1].number
    if t in (f.TYPE_DOUBLE, f.TYPE_FLOAT):
        return 1.5
    if t in (f.TYPE_INT64, f.TYPE_SINT64, f.TYPE_SFIXED64, f.TYPE_UINT64, f.TYPE_FIXED64):
        return 12345678901234567
    return 7


def test_proto3_json_matches_python_for_every_list(node: str) -> None:
    cases, expected = [], {}
    for module_path in sorted(PROTO_DIR.glob("*_pb2.py")):
        module = importlib.import_module(f"kumo.v1.{module_path.stem}")
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                if not method.name.startswith("List"):
                    continue
                response = message_factory.GetMessageClass(method.output_type)()
                field = next(f for f in method.output_type.fields if f.is_repeated and f.message_type)
                _fill(getattr(response, field.name).add())
                getattr(response, field.name).add()  # and an all-defaults one
                cases.append(
                    [method.name, field.name, base64.b64encode(response.SerializeToString()).decode()]
                )
                expected[method.name] = [
                    MessageToDict(
                        item, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
                    )
                    for item in getattr(response, field.name)
                ]
    assert "ListProjects" in expected
    result = subprocess.run(
        [node, "-e", NODE_CONVERT],
        input=json.dumps(cases),
        cwd=EXAMPLE,
        env={**os.environ, "KUMO_PROTO_DIR": str(ROOT / "proto")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    got = json.loads(result.stdout)
    for method, items in expected.items():
        assert got[method] == items, method


# docs/api.md: its examples run as written, and its table names every reason.

API_DOC = ROOT / "docs" / "api.md"


def doc_block(tag: str) -> str:
    """The fenced code block right after `<!-- tested: TAG -->` in docs/api.md."""
    match = re.search(rf"<!-- tested: {tag} -->\n```\w*\n(.*?)\n```", API_DOC.read_text(), re.S)
    assert match, f"docs/api.md has no block tagged {tag}"
    return match.group(1)


def test_doc_reflection_client_runs(controller: ControllerProc, admin: Client, projects) -> None:  # type: ignore[no-untyped-def]
    env = node_env(controller, KUMO_PASSWORD=ADMIN_PASSWORD)
    result = subprocess.run(
        [sys.executable, "-c", doc_block("reflection-client")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    names = {p["name"] for p in json.loads(result.stdout)["projects"]}
    assert {p.name for p in projects} | {"admin"} <= names


def test_doc_nodejs_snippet_runs(node: str, controller: ControllerProc, projects) -> None:  # type: ignore[no-untyped-def]
    env = node_env(controller, KUMO_PASSWORD=ADMIN_PASSWORD)
    result = subprocess.run(
        [node, "-"],
        input=doc_block("nodejs-snippet"),
        cwd=EXAMPLE,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert {p.name for p in projects} | {"admin"} <= set(json.loads(result.stdout))


def test_doc_lists_every_error_reason() -> None:
    """Every literal ErrorInfo reason under controller/ is in docs/api.md's table."""
    used = set()
    for path in (ROOT / "controller").rglob("*.py"):
        used |= set(re.findall(r'reason="([A-Z][A-Z0-9_]*)"', path.read_text()))
    doc = API_DOC.read_text()
    missing = sorted(r for r in used if f"`{r}`" not in doc)
    assert not missing, f"add these ErrorInfo reasons to the table in docs/api.md: {missing}"
