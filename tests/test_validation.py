"""The shared field checks in controller/validation.py, without a controller:
references to other resources and update-mask tables."""

from __future__ import annotations

from types import MappingProxyType

import pytest

from controller import validation as v
from controller.errors import InvalidArgument
from kumo.v1 import identity_pb2 as idpb


@pytest.mark.parametrize(
    ("value", "required", "message"),
    [
        ("", True, "image is required (an id or a name)"),
        ("x" * 256, True, "image must be at most 255 characters"),
        ("x" * 256, False, "image must be at most 255 characters"),
        ("a\x00b", True, "image must not contain control characters"),
        ("a\nb", False, "image must not contain control characters"),
    ],
)
def test_reference_refuses(value: str, required: bool, message: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        v.reference(value, "image", required=required)
    assert str(err.value) == message


def test_reference_accepts_ids_and_names() -> None:
    assert v.reference("cirros", "image") == "cirros"
    assert v.reference("x" * 255, "image") == "x" * 255
    assert v.reference("", "keypair", required=False) == ""


RULES: v.UpdateRules = MappingProxyType(
    {
        "name": lambda p: v.name(p.name, "project.name"),
        "description": lambda p: v.text(p.description, "project.description"),
        "enabled": lambda p: p.enabled,
    }
)


def test_updates_reads_only_the_masked_fields() -> None:
    msg = idpb.Project(name="new", description="d", enabled=True)
    assert v.updates(["enabled", "name"], msg, RULES) == {"name": "new", "enabled": True}
    assert v.updates(["description"], msg, RULES) == {"description": "d"}


def test_updates_checks_the_mask_before_the_values() -> None:
    bad = idpb.Project(name="", description="\x01")
    with pytest.raises(
        InvalidArgument, match="update_mask is required; fields you may change: description, enabled, name"
    ):
        v.updates([], bad, RULES)
    with pytest.raises(InvalidArgument, match="cannot be changed: id; allowed: description, enabled, name"):
        v.updates(["id", "name"], bad, RULES)


def test_updates_reports_the_first_bad_field_in_table_order() -> None:
    bad = idpb.Project(name="", description="\x01")
    with pytest.raises(InvalidArgument, match=r"project\.name is required"):
        v.updates(["description", "name"], bad, RULES)
    with pytest.raises(InvalidArgument, match=r"project\.description must not contain control characters"):
        v.updates(["description"], bad, RULES)


def test_request_key_digests_the_request_without_its_id() -> None:
    """The same request under two ids digests the same; any other field changes it."""
    one = v.request_key(idpb.CreateProjectRequest(project=idpb.Project(name="p"), request_id="r-1"))
    two = v.request_key(idpb.CreateProjectRequest(project=idpb.Project(name="p"), request_id="r-2"))
    other = v.request_key(idpb.CreateProjectRequest(project=idpb.Project(name="q"), request_id="r-1"))
    assert (one.request_id, two.request_id) == ("r-1", "r-2")
    assert one.digest == two.digest != other.digest
    assert len(one.digest) == 64
    assert not v.request_key(idpb.CreateProjectRequest(project=idpb.Project(name="p")))
    with pytest.raises(InvalidArgument, match="request_id must be at most 128"):
        v.request_key(idpb.CreateProjectRequest(request_id="r" * 129))


def test_page_size_clamps_to_the_maximum() -> None:
    """AIP-158: more than the maximum is served as the maximum; 0 is the default."""
    from controller.db.paging import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, check_page_size

    assert check_page_size(0) == DEFAULT_PAGE_SIZE
    assert check_page_size(7) == 7
    assert check_page_size(MAX_PAGE_SIZE + 1) == MAX_PAGE_SIZE
    assert check_page_size(2**31 - 1) == MAX_PAGE_SIZE
    with pytest.raises(InvalidArgument, match="negative"):
        check_page_size(-1)
