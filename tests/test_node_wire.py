"""The node wire protocol lives in node_agent.proto, apart from the public API
(node.proto), with the full names it had before the split: nodes and stored
state from before it keep working."""

from __future__ import annotations

import json
from pathlib import Path

from google.protobuf.json_format import MessageToDict, ParseDict

from kumo.v1 import node_agent_pb2, node_pb2
from noded.state import StateDir
from tests.rpcs import all_rpcs

AGENT_RPCS = (
    "GetCaBundle",
    "Enroll",
    "Session",
    "DownloadBlob",
    "UploadSnapshot",
    "ReportConsole",
    "ConsoleStream",
)


def test_each_file_holds_one_service() -> None:
    assert list(node_pb2.DESCRIPTOR.services_by_name) == ["NodeService"]
    assert list(node_agent_pb2.DESCRIPTOR.services_by_name) == ["NodeAgentService"]
    # The public file stands alone; the wire protocol builds on it.
    assert "kumo/v1/node_agent.proto" not in [d.name for d in node_pb2.DESCRIPTOR.dependencies]
    assert "kumo/v1/node.proto" in [d.name for d in node_agent_pb2.DESCRIPTOR.dependencies]
    # What the admin's Node embeds stays public.
    assert {"NodeInventory", "NodeUsage", "Node"} <= set(node_pb2.DESCRIPTOR.message_types_by_name)


def test_full_names_did_not_move() -> None:
    """Package kumo.v1 for both: the wire and the policy keys stay the same."""
    for name in ("NodeDesiredState", "DesiredStateUpdate", "NodeHello", "Heartbeat", "GuestStatus"):
        assert node_agent_pb2.DESCRIPTOR.message_types_by_name[name].full_name == f"kumo.v1.{name}"
    service = node_agent_pb2.DESCRIPTOR.services_by_name["NodeAgentService"]
    assert service.full_name == "kumo.v1.NodeAgentService"
    paths = {r.path for r in all_rpcs()}
    assert {f"/kumo.v1.NodeAgentService/{m}" for m in AGENT_RPCS} <= paths


def test_desired_state_stored_before_the_split_still_loads(tmp_path: Path) -> None:
    """desired.json as kumo-noded wrote it (proto3 JSON of NodeDesiredState)."""
    stored = {
        "enabled": True,
        "instances": [{"id": "i-1", "power": "DESIRED_POWER_RUNNING", "imageFormat": "DISK_FORMAT_QCOW2"}],
        "networks": [
            {"id": "n-1", "vni": 5, "subnets": [{"id": "s-1", "cidr": "fd00::/64", "ipv6Slaac": True}]}
        ],
        "ports": [{"id": "p-1", "fixedIps": [{"subnetId": "s-1", "ipAddress": "fd00::1"}]}],
        "securityGroups": [{"id": "g-1", "rules": [{"id": "r-1", "portRangeMax": 22}]}],
        "volumes": [{"id": "v-1", "sizeGb": "3"}],
    }
    (tmp_path / "desired.json").write_text(json.dumps({"revision": 7, "state": stored}))
    assert StateDir(tmp_path).load_desired_revision() == 7
    state = ParseDict(stored, node_agent_pb2.NodeDesiredState())
    assert state.instances[0].power == node_agent_pb2.DESIRED_POWER_RUNNING
    assert MessageToDict(state) == stored
