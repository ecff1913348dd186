"""Series budgets: known series always pass, new ones until the budget, then refused and counted."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.errors import DecodeError
from gateway.model import Drop, Readings
from gateway.policies.series_budget import CARDINALITY_EXCEEDED, SeriesBudget, limits_of
from gateway.profiles.registry import load_directory

REFUSED = ("(series)", CARDINALITY_EXCEEDED)


Point = tuple[str, str]  # (line, series key)


def point(device: str, lane: str = "1", measurement: str = "traffic_flow") -> Point:
    key = f"{measurement},device_id={device},lane={lane}"
    return (f"{key} count=1i 0", key)


def of(points: list[Point]) -> Readings:
    """A message's readings made of `points`."""
    return Readings([line for line, _ in points], [key for _, key in points], [0] * len(points), "")


def test_known_series_pass_and_the_same_list_comes_back() -> None:
    budget = SeriesBudget({"p": 2})
    points = of([point("a"), point("b")])
    drops: list[Drop] = []
    assert budget.admit("p", points, drops) is points
    again = of([point("b"), point("a"), point("a")])
    assert budget.admit("p", again, drops) is again  # known series never count twice
    assert drops == []
    assert budget.count("p") == 2


def test_new_series_beyond_the_budget_are_refused_the_rest_kept() -> None:
    budget = SeriesBudget({"p": 2})
    drops: list[Drop] = []
    admitted = budget.admit("p", of([point("a", "1"), point("a", "2"), point("a", "3")]), drops)
    assert admitted == of([point("a", "1"), point("a", "2")])
    assert drops == [REFUSED]
    assert budget.count("p") == 2  # memory holds admitted series only


def test_a_message_with_every_point_refused_is_a_dead_letter() -> None:
    budget = SeriesBudget({"p": 1})
    budget.admit("p", of([point("a")]), [])
    drops: list[Drop] = []
    with pytest.raises(DecodeError) as raised:
        budget.admit("p", of([point("b"), point("c")]), drops)
    assert raised.value.reason == CARDINALITY_EXCEEDED
    assert "p already has 1 series" in raised.value.detail
    assert drops == [REFUSED, REFUSED]
    assert budget.admit("p", of([point("a")]), []) == of([point("a")])  # the old series still write


def test_a_refused_series_refuses_every_point_of_it() -> None:
    budget = SeriesBudget({"p": 1})
    drops: list[Drop] = []
    admitted = budget.admit("p", of([point("a"), point("b"), point("a"), point("b")]), drops)
    assert admitted == of([point("a"), point("a")])
    assert drops == [REFUSED, REFUSED]


def test_measurement_is_part_of_the_series() -> None:
    budget = SeriesBudget({"p": 1})
    drops: list[Drop] = []
    budget.admit("p", of([point("a"), point("a", measurement="other")]), drops)
    assert drops == [REFUSED]


def test_profiles_have_separate_budgets_and_unknown_ones_the_default() -> None:
    budget = SeriesBudget({"small": 1}, default_limit=3)
    budget.admit("small", of([point("a")]), [])
    drops: list[Drop] = []
    assert len(budget.admit("other", of([point(d) for d in "abcd"]), drops).lines) == 3
    assert drops == [REFUSED]
    assert (budget.count("small"), budget.count("other"), budget.count("none")) == (1, 3, 0)


def test_new_limits_keep_the_known_series() -> None:
    budget = SeriesBudget({"p": 3, "gone": 1})
    budget.admit("p", of([point(d) for d in "abc"]), [])
    budget.admit("gone", of([point("a")]), [])
    budget.set_limits({"p": 2, "new": 1})
    assert budget.count("p") == 3
    assert budget.count("gone") == 0
    drops: list[Drop] = []
    assert budget.admit("p", of([point("a"), point("z")]), drops) == of([point("a")])
    assert drops == [REFUSED]


def test_a_budget_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        SeriesBudget({"p": 0})


def test_budgets_come_from_the_profiles() -> None:
    profiles = load_directory(Path(__file__).resolve().parent.parent / "device_profiles").profiles
    limits = limits_of(profiles)
    assert set(limits) == {profile.id for profile in profiles}
    assert limits == {profile.id: profile.max_series for profile in profiles}
    assert SeriesBudget.for_profiles(profiles).count(profiles[0].id) == 0
