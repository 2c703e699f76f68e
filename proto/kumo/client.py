"""A client of the public API: one TLS channel, a bearer token, and a stub per
service whose calls carry the token and a deadline.

The CLI, the tests and the benchmarks all talk to the controller through this
one class, so "how a call is authenticated" is written once."""

from __future__ import annotations

import ipaddress
import socket
from typing import TYPE_CHECKING, Any, TypeVar, cast

import grpc

if TYPE_CHECKING:  # each property imports its service's module when used: a CLI command loads one
    from kumo.v1 import (
        compute_pb2_grpc,
        event_pb2_grpc,
        identity_pb2_grpc,
        image_pb2_grpc,
        network_pb2_grpc,
        node_pb2_grpc,
        volume_pb2_grpc,
    )
    from kumo.v1 import identity_pb2 as idpb

S = TypeVar("S")

DEFAULT_TIMEOUT = 60.0


def _host_port(endpoint: str) -> tuple[str, str]:
    host, sep, port = endpoint.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"controller address {endpoint!r} is not HOST:PORT")
    return host.strip("[]"), port


def channel_target(endpoint: str) -> tuple[str, list[tuple[str, Any]]]:
    """The gRPC target and channel options for `endpoint`: one HOST:PORT as
    is; a comma list of several controllers (HOST:PORT,HOST:PORT) as one
    multi-address target whose calls go round robin to the controllers that
    answer. Host names in a list are resolved once, here; every controller's
    server certificate must hold the first address's host (its server_names),
    since that is the name checked on each."""
    parts = [e.strip() for e in endpoint.split(",") if e.strip()]
    if len(parts) <= 1:
        return endpoint.strip(), []
    addresses = []
    family = ""
    for part in parts:
        host, port = _host_port(part)
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            try:
                info = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
            except OSError as exc:
                raise ValueError(f"cannot resolve controller host {host!r}: {exc}") from None
            ip = ipaddress.ip_address(info[0][4][0])
        kind = f"ipv{ip.version}"
        if family and kind != family:
            raise ValueError(f"controller addresses {endpoint!r} mix IPv4 and IPv6")
        family = kind
        addresses.append(f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}")
    options = [
        ("grpc.lb_policy_name", "round_robin"),
        ("grpc.ssl_target_name_override", _host_port(parts[0])[0]),
    ]
    return f"{family}:{','.join(addresses)}", options


def tls_channel(endpoint: str, ca_pem: bytes | None) -> grpc.Channel:
    """A TLS channel that trusts `ca_pem` (the controller's CA), or the system
    roots when None; `endpoint` may name several controllers (channel_target)."""
    target, options = channel_target(endpoint)
    return grpc.secure_channel(target, grpc.ssl_channel_credentials(ca_pem), options=options)


class _Bound:
    """A stub whose calls get the token metadata and a timeout unless the caller passes its own."""

    def __init__(self, raw: Any, metadata: list[tuple[str, str]], timeout: float) -> None:
        self._raw = raw
        self._metadata = metadata
        self._timeout = timeout

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._raw, name)
        metadata, timeout = self._metadata, self._timeout

        def call(request: Any, **kw: Any) -> Any:
            kw.setdefault("metadata", metadata)
            kw.setdefault("timeout", timeout)
            return method(request, **kw)

        return call


class Client:
    """Stubs that send a bearer token: `client.identity.ListProjects(req)`.

    `who` is the identity Authenticate returned (None for a client built from a
    stored token); `metadata` is what to pass to a raw call on `channel`."""

    def __init__(
        self,
        channel: grpc.Channel,
        token: str = "",
        identity: idpb.Identity | None = None,
        *,
        endpoint: str = "",
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.channel = channel
        self.token = token
        self.who = identity
        self.endpoint = endpoint
        self.timeout = timeout
        self.metadata: list[tuple[str, str]] = [("authorization", f"Bearer {token}")] if token else []

    @classmethod
    def connect(
        cls, endpoint: str, ca_pem: bytes | None, token: str = "", *, timeout: float = DEFAULT_TIMEOUT
    ) -> Client:
        """A client on a new TLS channel to `endpoint`."""
        return cls(tls_channel(endpoint, ca_pem), token, endpoint=endpoint, timeout=timeout)

    def authenticate(self, user: str, password: str, project: str = "") -> Client:
        """Logs in on this client's channel; the answer is a client carrying the new token."""
        from kumo.v1 import identity_pb2 as idpb

        resp = self.identity.Authenticate(
            idpb.AuthenticateRequest(user=user, password=password, project=project)
        )
        return Client(self.channel, resp.token, resp.identity, endpoint=self.endpoint, timeout=self.timeout)

    def stub(self, stub_cls: type[S]) -> S:
        """A stub of `stub_cls` whose calls carry the token and a timeout."""
        return cast(S, _Bound(stub_cls(self.channel), self.metadata, self.timeout))

    @property
    def identity(self) -> identity_pb2_grpc.IdentityServiceStub:
        from kumo.v1 import identity_pb2_grpc

        return self.stub(identity_pb2_grpc.IdentityServiceStub)

    @property
    def images(self) -> image_pb2_grpc.ImageServiceStub:
        from kumo.v1 import image_pb2_grpc

        return self.stub(image_pb2_grpc.ImageServiceStub)

    @property
    def compute(self) -> compute_pb2_grpc.ComputeServiceStub:
        from kumo.v1 import compute_pb2_grpc

        return self.stub(compute_pb2_grpc.ComputeServiceStub)

    @property
    def networks(self) -> network_pb2_grpc.NetworkServiceStub:
        from kumo.v1 import network_pb2_grpc

        return self.stub(network_pb2_grpc.NetworkServiceStub)

    @property
    def volumes(self) -> volume_pb2_grpc.VolumeServiceStub:
        from kumo.v1 import volume_pb2_grpc

        return self.stub(volume_pb2_grpc.VolumeServiceStub)

    @property
    def nodes(self) -> node_pb2_grpc.NodeServiceStub:
        from kumo.v1 import node_pb2_grpc

        return self.stub(node_pb2_grpc.NodeServiceStub)

    @property
    def events(self) -> event_pb2_grpc.EventServiceStub:
        from kumo.v1 import event_pb2_grpc

        return self.stub(event_pb2_grpc.EventServiceStub)
