"""The volume tests that race (attaches, quota, node disk claims) and the main
lifecycles again, with the controller on a real PostgreSQL server: there the
compare-and-set UPDATEs and row locks, not SQLite's single writer, must make
exactly one racer win."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.test_volumes import (  # noqa: F401  (collected here again, with this module's `cloud`)
    start_cloud,
    test_attach_detach_and_wrong_states,
    test_boot_and_attach_race_for_one_volume,
    test_boot_from_volume,
    test_crud_pagination_and_field_masks,
    test_extend_while_attached,
    test_quotas,
    test_racing_attaches_exactly_one_wins,
    test_racing_creates_never_overcommit_a_node,
    test_racing_creates_respect_the_quota,
    test_snapshots_and_volumes_from_them,
    test_volume_from_an_image,
)

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def cloud(postgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:  # type: ignore[no-untyped-def]
    url = postgres.create_database("kumo_volumes")
    with start_cloud(tmp_path_factory.mktemp("pgvol"), ["--database-url", url]) as c:
        yield c
