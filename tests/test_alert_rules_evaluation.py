"""dashboards/evaluation.py on hand-made answers: Grafana's rules for states and expressions.

The answers are InfluxDB /query series as the real server returns them; tests/test_alert_rules.py
runs the same evaluator against a real InfluxDB.
"""

from __future__ import annotations

import math
from typing import Any

from dashboards.evaluation import RuleStates, evaluate, parse_duration_s, play
from dashboards.influxql import DATASOURCE_UID

MIN_MS = 60_000


def rule(condition: str, *expressions: dict[str, Any], **settings: str) -> dict[str, Any]:
    query = {
        "refId": "A",
        "datasourceUid": DATASOURCE_UID,
        "relativeTimeRange": {"from": 600, "to": 0},
        "model": {"query": 'SELECT last("x") FROM "m" WHERE $timeFilter GROUP BY "d"'},
    }
    data = [query, *({"refId": e["refId"], "datasourceUid": "__expr__", "model": e}
                     for e in expressions)]  # fmt: skip
    return {"uid": "r", "condition": condition, "data": data, "for": "10m", **settings}


LAST = {"refId": "B", "type": "reduce", "reducer": "last", "expression": "A"}


def above(limit: float) -> dict[str, Any]:
    condition = {"evaluator": {"type": "gt", "params": [limit]}}
    return {"refId": "C", "type": "threshold", "expression": "B", "conditions": [condition]}


def answer(*series: tuple[dict[str, str], list[float | None]]) -> list[dict[str, Any]]:
    return [
        {"name": "m", "tags": tags, "columns": ["time", "last"],
         "values": [[i, v] for i, v in enumerate(values)]}
        for tags, values in series
    ]  # fmt: skip


def test_pending_until_the_condition_held_for_the_rule_s_for_then_alerting() -> None:
    states = RuleStates(rule("C", LAST, above(1)))
    high = answer(({"d": "a"}, [0.0, 5.0]))
    for minute, expected in [(0, "Pending"), (5, "Pending"), (10, "Alerting"), (15, "Alerting")]:
        states.apply(evaluate(states.rule, lambda _q: high, minute * MIN_MS))
        assert states.instances[(("d", "a"),)].state == expected, minute
    states.apply(evaluate(states.rule, lambda _q: answer(({"d": "a"}, [0.5])), 20 * MIN_MS))
    assert states.instances[(("d", "a"),)].state == "Normal"


def test_two_series_with_the_same_labels_are_an_error() -> None:
    twice = answer(({"d": "a"}, [1.0]), ({"d": "a"}, [2.0]))
    outcome = evaluate(rule("C", LAST, above(1)), lambda _q: twice, 0)
    assert outcome.error is not None
    assert "cannot uniquely be identified by its labels" in outcome.error


def test_no_series_is_no_data_and_follows_no_data_state() -> None:
    history = play([rule("C", LAST, above(1), noDataState="Alerting")], lambda _q: [],
                   [0, 5 * MIN_MS, 10 * MIN_MS])["r"]  # fmt: skip
    assert history.no_data == 3
    assert history.firing_evaluations == 1  # pending at 0 and 5, alerting once 10 min held
    quiet = play([rule("C", LAST, above(1), noDataState="OK")], lambda _q: [], [0, 10 * MIN_MS])
    assert quiet["r"].firing_evaluations == 0


def test_a_failing_query_is_the_error_state() -> None:
    def refuse(_query: str) -> list[dict[str, Any]]:
        raise OSError("connection refused")

    history = play([rule("C", LAST, above(1))], refuse, [0])["r"]
    assert history.errors
    assert "connection refused" in history.errors[0][1]


def test_nan_reaching_a_threshold_is_nan_which_grafana_counts_as_alerting() -> None:
    rule_ = rule("C", LAST, above(1))
    outcome = evaluate(rule_, lambda _q: answer(({"d": "a"}, [None])), 0)
    (value,) = outcome.numbers.values()
    assert value is not None
    assert math.isnan(value)
    assert outcome.nan_conditions == 1
    states = RuleStates({**rule_, "for": "0s"})
    states.apply(outcome)
    assert states.instances[(("d", "a"),)].state == "Alerting"


def test_outside_range_short_circuits_like_grafana() -> None:
    outside = {
        "refId": "C",
        "type": "threshold",
        "expression": "B",
        "conditions": [{"evaluator": {"type": "outside_range", "params": [6, 8.5]}}],
    }
    values = answer(({"d": "low"}, [5.0]), ({"d": "ok"}, [7.0]), ({"d": "high"}, [9.0]))
    outcome = evaluate(rule("C", LAST, outside), lambda _q: values, 0)
    assert outcome.numbers == {(("d", "high"),): 1.0, (("d", "low"),): 1.0, (("d", "ok"),): 0.0}


def test_math_joins_by_labels_and_needs_both_conditions() -> None:
    share = {"refId": "B", "type": "reduce", "reducer": "last", "expression": "A"}
    math = {"refId": "E", "type": "math", "expression": "$B > 5 && $B >= 30"}
    values = answer(({"d": "a"}, [10.0]), ({"d": "b"}, [40.0]))
    outcome = evaluate(rule("E", share, math), lambda _q: values, 0)
    assert outcome.numbers == {(("d", "a"),): 0.0, (("d", "b"),): 1.0}


def test_durations() -> None:
    assert parse_duration_s("1h30m") == 5400
    assert parse_duration_s("0s") == 0
