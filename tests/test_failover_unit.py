"""Several controller addresses, without servers: the client's multi-address
target (round robin, the TLS name of the first address) and the node's
endpoint rotation."""

from __future__ import annotations

from pathlib import Path

import pytest

from kumo.client import channel_target
from noded.endpoints import ControllerEndpoints, split_endpoints


def test_one_address_is_passed_as_is() -> None:
    assert channel_target("kumo.example.com:8443") == ("kumo.example.com:8443", [])


def test_several_addresses_make_one_round_robin_target_checked_by_the_first_name() -> None:
    target, options = channel_target("127.0.0.1:1, localhost:2,127.0.0.3:3")
    assert target == "ipv4:127.0.0.1:1,127.0.0.1:2,127.0.0.3:3"
    assert dict(options) == {
        "grpc.lb_policy_name": "round_robin",
        "grpc.ssl_target_name_override": "127.0.0.1",
    }
    v6, _ = channel_target("[::1]:1,[::1]:2")
    assert v6 == "ipv6:[::1]:1,[::1]:2"


@pytest.mark.parametrize("bad", ["127.0.0.1:1,[::1]:2", "127.0.0.1:1,nohost", "127.0.0.1:1,:5", "a:1,b:x"])
def test_bad_address_lists_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        channel_target(bad)


def test_a_node_moves_to_the_next_controller_only_from_the_one_that_failed() -> None:
    eps = ControllerEndpoints("a:1, b:2,c:3")
    assert eps.all == ["a:1", "b:2", "c:3"] and eps.current() == "a:1"
    assert eps.failed("a:1") == "b:2"
    assert eps.failed("a:1") == "b:2"  # a late report about an old one changes nothing
    assert eps.failed("b:2") == "c:3"
    assert eps.failed("c:3") == "a:1"
    single = ControllerEndpoints("only:7444")
    assert single.failed("only:7444") == "only:7444"
    assert split_endpoints(" , x:1 ,") == ["x:1"]


def test_learned_controllers_follow_the_given_ones_replace_the_old_and_survive_a_restart(
    tmp_path: Path,
) -> None:
    kept = tmp_path / "controllers.json"
    eps = ControllerEndpoints("a:1", kept)
    eps.learn(["a:1", "b:2", "c:3"])  # the welcome's list: the controller itself first
    assert eps.all == ["a:1", "b:2", "c:3"]
    assert eps.failed("a:1") == "b:2"
    eps.learn(["b:2", "d:4"])  # c left the control plane; d joined; the session stays on b
    assert eps.all == ["a:1", "b:2", "d:4"] and eps.current() == "b:2"
    again = ControllerEndpoints("a:1", kept)  # a restart remembers what was learned
    assert again.all == ["a:1", "b:2", "d:4"] and again.current() == "a:1"
    kept.write_text("not json")
    assert ControllerEndpoints("a:1", kept).all == ["a:1"]  # a spoiled file is ignored
