"""Every RPC of every kumo.v1 service, found from the generated descriptors,
so the auth tests cover RPCs added later without anyone listing them."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import message_factory

import kumo.v1


@dataclass(frozen=True)
class Rpc:
    path: str
    client_streaming: bool
    server_streaming: bool
    request_cls: Any
    method: Any = None  # its MethodDescriptor (output_type, options)

    def call(
        self, channel: grpc.Channel, metadata: list[tuple[str, str]] | None = None, timeout: float = 30
    ) -> Any:
        """Calls with an empty request; returns the response (drained if a stream)."""
        ser = self.request_cls.SerializeToString
        req = self.request_cls()
        kw = {"metadata": metadata or [], "timeout": timeout}
        if self.client_streaming and self.server_streaming:
            return list(channel.stream_stream(self.path, ser, lambda b: b)(iter([req]), **kw))
        if self.client_streaming:
            return channel.stream_unary(self.path, ser, lambda b: b)(iter([req]), **kw)
        if self.server_streaming:
            return list(channel.unary_stream(self.path, ser, lambda b: b)(req, **kw))
        return channel.unary_unary(self.path, ser, lambda b: b)(req, **kw)


def all_rpcs() -> Iterator[Rpc]:
    for info in pkgutil.iter_modules(kumo.v1.__path__):
        if not info.name.endswith("_pb2"):
            continue
        module = importlib.import_module(f"kumo.v1.{info.name}")
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                yield Rpc(
                    f"/{service.full_name}/{method.name}",
                    method.client_streaming,
                    method.server_streaming,
                    message_factory.GetMessageClass(method.input_type),
                    method,
                )
