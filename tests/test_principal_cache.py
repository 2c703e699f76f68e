"""The token-check cache's staleness bound (controller/auth/principal_cache.py):
an entry is reused for less than max_age seconds, a local change clears it,
and a check that raced a change is not kept. Across controllers the bound is
shown by tests/test_control_plane.py (revoked on A, refused on B after it)."""

from __future__ import annotations

from controller.auth.principal import Principal, Role
from controller.auth.principal_cache import PrincipalCache

ALICE = Principal("u", "alice", "p", "demo", Role.MEMBER, "t", 0.0)


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_an_entry_is_reused_only_within_its_bound() -> None:
    clock = Clock()
    cache = PrincipalCache(2.0, clock)
    cache.put("tok", ALICE, cache.generation(), cache.now())
    assert cache.get("tok") is ALICE
    clock.t += 1.99
    assert cache.get("tok") is ALICE
    clock.t += 0.01
    assert cache.get("tok") is None, "at max_age the database is asked again"


def test_the_bound_counts_from_before_the_database_was_asked() -> None:
    clock = Clock()
    cache = PrincipalCache(2.0, clock)
    checked_at = cache.now()
    clock.t += 1.5  # a slow query
    cache.put("tok", ALICE, cache.generation(), checked_at)
    clock.t += 0.5
    assert cache.get("tok") is None


def test_a_local_change_clears_everything_and_a_racing_check_is_not_kept() -> None:
    cache = PrincipalCache(60.0, Clock())
    cache.put("tok", ALICE, cache.generation(), cache.now())
    before = cache.generation()  # a check starts ...
    cache.clear()  # ... a revoke commits and clears ...
    assert cache.get("tok") is None
    cache.put("other", ALICE, before, cache.now())  # ... the check's answer may predate it
    assert cache.get("other") is None


def test_zero_turns_it_off() -> None:
    cache = PrincipalCache(0, Clock())
    cache.put("tok", ALICE, cache.generation(), cache.now())
    assert cache.get("tok") is None
