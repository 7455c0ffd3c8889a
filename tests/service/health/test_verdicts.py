"""The verdict rules as pure functions, over tables of cases."""
import datetime

import pytest

from service.health.verdicts import (
    Health, RegionState, Thresholds, after_result, fresh_states, stale_after, verdict,
)

U, H, X = Health.UNKNOWN, Health.HEALTHY, Health.UNHEALTHY
THRESHOLDS = Thresholds(healthy=2, unhealthy=3)


def run(results: str, start=RegionState()) -> RegionState:
    """The state after a run of results: '+' a success, '-' a failure."""
    state = start
    for result in results:
        state = after_result(state, result == "+", THRESHOLDS)
    return state


@pytest.mark.parametrize("results, health", [
    ("", U),
    ("+", H),          # a new endpoint needs one success
    ("-", U),
    ("--", U),
    ("---", X),        # unhealthy_threshold failures
    ("+--", H),
    ("+---", X),
    ("---+", X),       # back from unhealthy needs healthy_threshold successes
    ("---++", H),
    ("---+-+", X),     # a failure in between starts the count again
    ("---+-++", H),
    ("+-+--", H),      # failures are counted consecutively
    ("----------", X),
])
def test_region_state_machine(results, health):
    assert run(results).health == health


def test_counts_are_consecutive_runs():
    assert run("---+") == RegionState(X, successes=1, failures=0)
    assert run("++-") == RegionState(H, successes=0, failures=1)


def test_thresholds_of_one_flip_at_once():
    one = Thresholds(healthy=1, unhealthy=1)
    assert after_result(RegionState(H, 5, 0), False, one).health == X
    assert after_result(RegionState(X, 0, 5), True, one).health == H


@pytest.mark.parametrize("previous, fresh, expected", [
    (U, [], U),                 # no fresh region: as it was
    (H, [], H),
    (X, [], X),
    (U, [H], H),
    (H, [X], X),
    (X, [H, H, X], H),
    (H, [X, X, H], X),          # a majority unhealthy
    (H, [X, H], H),             # an even split is healthy
    (X, [X, H], H),
    (H, [X, X, H, H], H),
    (H, [X, U], H),             # one of two is not a majority; no region healthy: as it was
    (X, [X, U], X),
    (U, [U, U], U),
    (U, [X, U, U], U),
    (U, [X, X, U], X),
    (X, [U], X),
])
def test_verdict_across_regions(previous, fresh, expected):
    assert verdict(previous, fresh) == expected


def test_stale_regions_are_ignored():
    now = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)
    max_age = stale_after(check_interval_sec=5, timeout_sec=2)
    assert max_age == datetime.timedelta(seconds=17)
    regions = [
        (H, now - datetime.timedelta(seconds=17)),  # just fresh
        (X, now - datetime.timedelta(seconds=18)),  # stale
        (X, None),                                   # never probed
        (U, now),
    ]
    assert fresh_states(regions, now, max_age) == [H, U]


def test_a_silent_region_never_flips_a_verdict():
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    max_age = stale_after(1, 1)
    old = now - datetime.timedelta(seconds=60)
    assert verdict(H, fresh_states([(X, old), (X, old), (H, now)], now, max_age)) == H
    assert verdict(X, fresh_states([(H, old)], now, max_age)) == X
