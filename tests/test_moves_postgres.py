"""The move tests that race or hold two claims, again with the controller on
a real PostgreSQL server: there the conditional UPDATEs of node_usage (their
row locks), not SQLite's single writer, must keep racing resizes and creates
from overcommitting a node, and a cancel's row lock (SELECT ... FOR UPDATE
of the move) must hold off its switch."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.test_moves_fake import (  # noqa: F401  (collected here again, with this module's `cloud`)
    start_cloud,
    test_cancel_a_resize_before_its_switch_and_refused_after,
    test_resize_elsewhere_when_the_node_is_full_and_revert_comes_back,
    test_resizes_racing_creates_never_overcommit,
)

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def cloud(postgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:  # type: ignore[no-untyped-def]
    url = postgres.create_database("kumo_moves")
    with start_cloud(tmp_path_factory.mktemp("pgmoves"), url) as c:
        yield c
