"""The volume type tests that race or lock (a type deleted while volumes of
it are created, a type in use, shared volumes moving between nodes) again,
with the controller on a real PostgreSQL server: there the row locks
(CreateVolume holds its type FOR SHARE, DeleteVolumeType FOR UPDATE), not
SQLite's single writer, must keep a deleted type from having volumes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.test_volume_types import (  # noqa: F401  (collected here again, with this module's `cloud`)
    start_cloud,
    test_deleting_a_type_races_creates_of_its_volumes,
    test_shared_volumes_attach_on_any_node_and_types_in_use,
    test_type_rpcs_refuse_bad_input_and_roles,
)

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def cloud(postgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:  # type: ignore[no-untyped-def]
    url = postgres.create_database("kumo_volume_types")
    with start_cloud(tmp_path_factory.mktemp("pgvtypes"), ["--database-url", url]) as c:
        yield c
