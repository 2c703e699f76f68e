"""Malformed requests (issue 19): page tokens of the right width holding other
types, and request bytes that do not parse, on both ports, answer
INVALID_ARGUMENT, never INTERNAL or UNKNOWN, and log at most a rate-limited
info line (never a traceback)."""

from __future__ import annotations

import base64
import json
import logging
import re
import uuid
from typing import Any

import grpc
import pytest

from controller.auth.decoding import LogLimiter
from controller.db import models
from controller.db.paging import _decode
from controller.errors import InvalidArgument
from kumo.v1 import identity_pb2 as idpb
from tests.harness import Client, ControllerProc, error_reason, make_user
from tests.nodeutil import enroll, hello, make_token, node_channel

IDENT = lambda b: b  # noqa: E731
NOT_UTF8 = b"\x0a\x03a\xff\xfe"  # field 1 (a string in every request below): invalid UTF-8


def _token(values: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


WRONG_TYPES = [
    ["x", []],
    [[1, 2], "x"],
    [{}, str(uuid.uuid4())],
    [None, "x"],
    ["x", None],
    [True, "x"],
    ["x\x00", "y"],
    ["\ud800", "y"],
]


@pytest.mark.parametrize("values", WRONG_TYPES)
def test_a_page_token_with_the_wrong_types_is_refused_before_sql(values: list[Any]) -> None:
    with pytest.raises(InvalidArgument) as err:
        _decode(_token(values), (models.Project.name, models.Project.id))
    assert err.value.reason == "PAGE_TOKEN_INVALID"


@pytest.mark.parametrize(
    "values",
    [["p", "u", "1"], ["p", "u", 1.5], ["p", "u", 2**63], ["p", 7, 1], [["p"], "u", 1]],
)
def test_role_assignment_tokens_check_foreign_keys_and_the_role(values: list[Any]) -> None:
    keys = (models.RoleAssignment.project, models.RoleAssignment.user, models.RoleAssignment.role)
    with pytest.raises(InvalidArgument):
        _decode(_token(values), keys)
    assert _decode(_token(["p", "u", 1]), keys) == ["p", "u", 1]


def test_numeric_keys_take_numbers_only() -> None:
    keys = (models.JoinToken.create_time, models.JoinToken.id)
    assert _decode(_token([1700000000.5, "t"]), keys) == [1700000000.5, "t"]
    for bad in (["1700000000", "t"], [float("nan"), "t"], [1e400, "t"], [False, "t"]):
        with pytest.raises(InvalidArgument):
            _decode(base64.urlsafe_b64encode(json.dumps(bad).encode()).decode(), keys)


def _code(fn: Any, *args: Any, **kw: Any) -> grpc.RpcError:
    try:
        result = fn(*args, **kw)
        if hasattr(result, "__iter__") and not isinstance(result, bytes):
            list(result)
    except grpc.RpcError as exc:
        return exc
    raise AssertionError("expected an error")


def test_list_rpcs_refuse_page_tokens_of_other_types(controller: ControllerProc, admin: Client) -> None:
    for values in [["x", []], [[1, 2], "x"], [{}, str(uuid.uuid4())]]:
        err = _code(admin.identity.ListProjects, idpb.ListProjectsRequest(page_token=_token(values)))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err
        assert "page_token" in (err.details() or "")
        assert error_reason(err) == "PAGE_TOKEN_INVALID"
        err = _code(
            admin.identity.ListRoleAssignments, idpb.ListRoleAssignmentsRequest(page_token=_token(values))
        )
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err


def test_role_assignment_pages_follow_their_tokens(controller: ControllerProc, admin: Client) -> None:
    """ListRoleAssignments' next page (foreign-key keys) still works end to end."""
    project = admin.identity.CreateProject(idpb.CreateProjectRequest(project=idpb.Project(name="pages")))
    for i in range(3):
        make_user(admin, project.id, f"pager-{i}", idpb.ROLE_MEMBER)
    seen, token = [], ""
    while True:
        page = admin.identity.ListRoleAssignments(
            idpb.ListRoleAssignmentsRequest(project_id=project.id, page_size=1, page_token=token)
        )
        seen += [ra.user_id for ra in page.role_assignments]
        token = page.next_page_token
        if not token:
            break
    assert len(seen) == len(set(seen)) == 3


def _log_since(controller: ControllerProc, start: int) -> str:
    path = controller.data_dir.parent / f"{controller.data_dir.name}-controller.log"
    return path.read_text(errors="replace")[start:]


def _log_size(controller: ControllerProc) -> int:
    return (controller.data_dir.parent / f"{controller.data_dir.name}-controller.log").stat().st_size


PUBLIC_CASES = [
    ("/kumo.v1.IdentityService/Authenticate", "kumo.v1.AuthenticateRequest"),
    ("/kumo.v1.NodeAgentService/GetCaBundle", "kumo.v1.GetCaBundleRequest"),
    ("/kumo.v1.NodeAgentService/Enroll", "kumo.v1.EnrollRequest"),
    ("/kumo.v1.IdentityService/GetProject", "kumo.v1.GetProjectRequest"),
    ("/grpc.health.v1.Health/Check", "grpc.health.v1.HealthCheckRequest"),
]


@pytest.mark.parametrize(
    ("path", "message", "raw"),
    [
        pytest.param(path, message, raw, id=f"{path.rsplit('/', 1)[1]}-{kind}")
        for path, message in PUBLIC_CASES
        for kind, raw in (("garbage", b"\x0f"), ("not-utf8", NOT_UTF8))
        # GetCaBundleRequest has no string field: for it the bytes are an unknown field, not bad UTF-8.
        if not (kind == "not-utf8" and message == "kumo.v1.GetCaBundleRequest")
    ],
)
def test_undecodable_requests_answer_invalid_argument_on_the_public_port(
    controller: ControllerProc, admin: Client, path: str, message: str, raw: bytes
) -> None:
    with controller.channel() as channel:
        call = channel.unary_unary(path, IDENT, IDENT)
        err = _code(call, raw, metadata=[("authorization", f"Bearer {admin.token}")], timeout=30)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err
    assert f"the request could not be parsed as {message}" in (err.details() or "")
    assert error_reason(err) == "MALFORMED_REQUEST"
    if raw == NOT_UTF8:  # the message names the field
        assert "is not valid UTF-8" in (err.details() or ""), err.details()


def test_the_message_names_a_nested_field_that_is_not_utf8(controller: ControllerProc, admin: Client) -> None:
    inner = b"\x12\x02\xc3\x28"  # Project.name (2): not UTF-8
    raw = b"\x0a" + bytes([len(inner)]) + inner  # CreateProjectRequest.project (1)
    with controller.channel() as channel:
        call = channel.unary_unary("/kumo.v1.IdentityService/CreateProject", IDENT, IDENT)
        err = _code(call, raw, metadata=[("authorization", f"Bearer {admin.token}")], timeout=30)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err
    assert "kumo.v1.CreateProjectRequest (project.name is not valid UTF-8)" in (err.details() or "")


def test_an_undecodable_upload_message_is_invalid_argument(controller: ControllerProc, admin: Client) -> None:
    with controller.channel() as channel:
        call = channel.stream_unary("/kumo.v1.ImageService/UploadImageData", IDENT, IDENT)
        err = _code(call, iter([b"\x0f"]), metadata=[("authorization", f"Bearer {admin.token}")], timeout=30)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err


def test_undecodable_requests_answer_invalid_argument_on_the_node_port(
    controller: ControllerProc, admin: Client
) -> None:
    node = enroll(controller, make_token(admin), "malformed-node")
    with node_channel(controller, node.key_pem, node.cert_pem) as channel:
        session = channel.stream_stream("/kumo.v1.NodeAgentService/Session", IDENT, IDENT)
        for first in ([b"\x0f"], [NOT_UTF8]):
            err = _code(session, iter(first), timeout=30)
            assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err
            assert "could not be parsed as kumo.v1.SessionRequest" in (err.details() or "")
        # A hello that parses, then one that does not: the session ends INVALID_ARGUMENT.
        err = _code(session, iter([hello().SerializeToString(), b"\x0f"]), timeout=30)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err
        for path, raw in [
            ("/kumo.v1.NodeAgentService/ReportConsole", b"\x0f"),
            ("/kumo.v1.NodeAgentService/ReportConsole", NOT_UTF8),
        ]:
            err = _code(channel.unary_unary(path, IDENT, IDENT), raw, timeout=30)
            assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err
            assert "could not be parsed as kumo.v1.ReportConsoleRequest" in (err.details() or "")
        for path in ("/kumo.v1.NodeAgentService/DownloadBlob",):
            err = _code(channel.unary_stream(path, IDENT, IDENT), b"\x0f", timeout=30)
            assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err
        upload = channel.stream_unary("/kumo.v1.NodeAgentService/UploadSnapshot", IDENT, IDENT)
        err = _code(upload, iter([b"\x0f"]), timeout=30)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err
        # gRPC's own services on the node port: health's Check and Watch, reflection.
        for call in (
            channel.unary_unary("/grpc.health.v1.Health/Check", IDENT, IDENT),
            channel.unary_stream("/grpc.health.v1.Health/Watch", IDENT, IDENT),
        ):
            err = _code(call, b"\x0f", timeout=30)
            assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err
        # An RPC the servicer does not implement is UNIMPLEMENTED, not INTERNAL.
        err = _code(channel.unary_unary("/grpc.health.v1.Health/List", IDENT, IDENT), b"", timeout=30)
        assert err.code() == grpc.StatusCode.UNIMPLEMENTED, err
        reflect = channel.stream_stream(
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", IDENT, IDENT
        )
        err = _code(reflect, iter([b"\x0f"]), timeout=30)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err


def test_a_flood_of_undecodable_requests_logs_a_few_info_lines_and_no_traceback(
    controller: ControllerProc,
) -> None:
    start = _log_size(controller)
    with controller.channel() as channel:
        call = channel.unary_unary("/kumo.v1.IdentityService/Authenticate", IDENT, IDENT)
        for _ in range(200):
            assert _code(call, b"\x0f", timeout=30).code() == grpc.StatusCode.INVALID_ARGUMENT
    text = _log_since(controller, start)
    assert not re.search(r"^\d\d:\d\d:\d\d (error|critical) |Traceback", text, re.MULTILINE), text[-3000:]
    assert "Exception deserializing" not in text
    assert text.count("MALFORMED_REQUEST") <= 25, text[-3000:]


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_log_limiter_lets_a_burst_through_per_window_and_counts_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    limiter = LogLimiter(burst=3, window=10.0, clock=clock)
    logger = logging.getLogger("kumo.test.limiter")
    with caplog.at_level(logging.INFO, logger="kumo.test.limiter"):
        for _ in range(10):
            limiter.log(logger, logging.INFO, "refused", method="m")
        assert len(caplog.records) == 3
        clock.now = 10.0
        limiter.log(logger, logging.INFO, "refused", method="m")
    assert len(caplog.records) == 4
    assert caplog.records[-1].dropped_since == 7
