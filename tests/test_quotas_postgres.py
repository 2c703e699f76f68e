"""The quota tests that race, again with the controller on a real PostgreSQL
server: there the conditional UPDATE of the usage counter (its row lock), not
SQLite's single writer, must keep the counters equal to the rows and let
exactly as many racers win as the limit allows."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.test_quotas import (  # noqa: F401  (collected here again, with this module's `cloud`)
    start_cloud,
    test_counters_equal_rows_after_racing_creates_and_deletes,
    test_lowering_below_usage_blocks_new_creates_only,
    test_project_limit_overrides_the_default,
    test_racing_for_the_last_instance,
)

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def cloud(postgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:  # type: ignore[no-untyped-def]
    url = postgres.create_database("kumo_quotas")
    with start_cloud(tmp_path_factory.mktemp("pgquota"), ["--database-url", url]) as c:
        yield c
