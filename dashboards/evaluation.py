"""Evaluate the provisioned alert rules the way Grafana 11's unified alerting does, offline.

Grafana cannot run here, yet an alert rule is only proven by evaluating it: a query that returns
data can still never fire, fire on healthy data, or end in Error. This module takes a rule as
the generated provisioning file holds it (dashboards/alerting/mh-alert-rules.yaml) and plays
Grafana's evaluation at chosen instants against a real InfluxDB:

- each InfluxQL query runs over the rule's relative time range, `$timeFilter` becoming
  `time >= <from>ms and time <= <to>ms` as Grafana's InfluxDB data source writes it; every value
  column of every series is one frame labelled by the series' tags;
- server-side expressions: `reduce` (last, mean, min, max, sum, count; strict mode unless the
  rule says dropNN/replaceNN), `threshold` (gt, lt, within_range, outside_range) and `math`
  (`$A > 5 && $B >= 3`: arithmetic, comparisons, && || !, joined by equal labels);
- the condition's numbers become instances, one per label set; two with the same labels are an
  error ("frame cannot uniquely be identified by its labels"), none is No Data;
- per instance: Normal -> Pending -> Alerting once the condition held for the rule's `for`;
  No Data and Error follow `noDataState` / `execErrState`; an instance missing from a result
  is resolved after two evaluations (Grafana's default missing-series rule).

Grafana's math (and a threshold is math: `$B > 5`) turns any operation on NaN into NaN, and a
NaN condition is "non-zero", i.e. Alerting (pkg/expr/mathexp, pkg/services/ngalert/eval): a
NaN reaching a threshold fires for a reason nobody meant. The evaluator follows that and counts
each such NaN, so a test can insist on none.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from dashboards.influxql import DATASOURCE_UID

Labels = tuple[tuple[str, str], ...]
RunQuery = Callable[[str], list[dict[str, Any]]]  # InfluxQL -> the answer's series
State = Literal["Normal", "Pending", "Alerting", "NoData", "Error"]

MISSING_EVALUATIONS_TO_RESOLVE = 2
_REF = re.compile(r"\$\{([^}]+)\}|\$([A-Za-z_]\w*)")
_DURATION = re.compile(r"(\d+)([smhd])")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class EvaluationError(Exception):
    """What Grafana would report as the rule's evaluation error."""


@dataclass(frozen=True, slots=True)
class Series:
    labels: Labels
    values: list[float | None]


@dataclass(frozen=True, slots=True)
class Number:
    labels: Labels
    value: float | None


Result = list[Series] | list[Number]


@dataclass(slots=True)
class Instance:
    state: State = "Normal"
    active_since_ms: int | None = None  # when the condition started to hold
    missing: int = 0


@dataclass(frozen=True, slots=True)
class Outcome:
    """One evaluation: the condition per label set, or No Data, or an error."""

    at_ms: int
    numbers: dict[Labels, float | None] = field(default_factory=dict)
    no_data: bool = False
    error: str | None = None
    nan_conditions: int = 0  # NaN fed to a comparison: NaN, which Grafana counts as Alerting


@dataclass(slots=True)
class History:
    """Every evaluation of one rule and the states its instances went through."""

    uid: str
    evaluations: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)
    no_data: int = 0
    nan_conditions: int = 0
    # (instance labels, evaluation time) of every evaluation that left an instance Alerting
    alerting: list[tuple[Labels, int]] = field(default_factory=list)
    pending: int = 0

    @property
    def firing_evaluations(self) -> int:
        return len({at for _, at in self.alerting})

    def firing_between(self, start_ms: int, end_ms: int) -> bool:
        return any(start_ms <= at <= end_ms for _, at in self.alerting)

    def firing_outside(self, windows: Iterable[tuple[int, int]]) -> list[tuple[Labels, int]]:
        spans = list(windows)
        return [
            (labels, at)
            for labels, at in self.alerting
            if not any(start <= at <= end for start, end in spans)
        ]


def parse_duration_s(text: str) -> int:
    """Grafana's `for` ("15m", "1h30m", "0s") in seconds."""
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        msg = f"not a duration: {text!r} (e.g. 5m, 1h30m)"
        raise ValueError(msg)
    return sum(int(number) * _SECONDS[unit] for number, unit in parts)


# ---- one evaluation -----------------------------------------------------------------------


def evaluate(rule: Mapping[str, Any], run_query: RunQuery, at_ms: int) -> Outcome:
    """The rule's condition at `at_ms`, or why there is none."""
    nan_count = [0]
    results: dict[str, Result] = {}
    try:
        for data in rule["data"]:
            results[data["refId"]] = _node(data, results, run_query, at_ms, nan_count)
        condition = results[rule["condition"]]
    except EvaluationError as exc:
        return Outcome(at_ms, error=str(exc))
    numbers = _numbers(condition)
    if not numbers or all(number.value is None for number in numbers):
        return Outcome(at_ms, no_data=True, nan_conditions=nan_count[0])
    by_labels: dict[Labels, float | None] = {}
    for number in numbers:
        if number.labels in by_labels:
            shown = "{" + ", ".join(f"{k}={v}" for k, v in number.labels) + "}"
            return Outcome(
                at_ms,
                error="frame cannot uniquely be identified by its labels: has duplicate "
                f"results with labels {shown}",
            )
        by_labels[number.labels] = number.value
    return Outcome(at_ms, by_labels, nan_conditions=nan_count[0])


def _node(
    data: Mapping[str, Any],
    results: Mapping[str, Result],
    run_query: RunQuery,
    at_ms: int,
    nan_count: list[int],
) -> Result:
    model = data["model"]
    if data["datasourceUid"] == DATASOURCE_UID:
        window = data["relativeTimeRange"]
        start_ms, end_ms = at_ms - window["from"] * 1000, at_ms - window["to"] * 1000
        return _query(model["query"], run_query, start_ms, end_ms)
    kind = model.get("type")
    if kind == "reduce":
        return _reduce(_series(results, model["expression"]), model)
    if kind == "threshold":
        return _threshold(_numbers(results[model["expression"]]), model, nan_count)
    if kind == "math":
        return _math(model["expression"], results, nan_count)
    msg = f"expression type {kind!r} is not evaluated here (reduce, threshold, math)"
    raise EvaluationError(msg)


def _query(influxql: str, run_query: RunQuery, start_ms: int, end_ms: int) -> list[Series]:
    statement = influxql.replace("$timeFilter", f"time >= {start_ms}ms and time <= {end_ms}ms")
    if "$" in statement.replace("$timeFilter", ""):
        msg = f"unsubstituted variable in {statement!r}"
        raise EvaluationError(msg)
    try:
        answer = run_query(statement)
    except Exception as exc:  # any failure of the data source is the rule's Error state
        msg = f"query failed: {exc}"
        raise EvaluationError(msg) from exc
    frames = []
    for series in answer:
        labels = tuple(sorted((series.get("tags") or {}).items()))
        for index in range(1, len(series["columns"])):
            values = [_float(row[index]) for row in series["values"]]
            frames.append(Series(labels, values))
    return frames


def _float(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    msg = f"non-numeric value {value!r} in a query answer"
    raise EvaluationError(msg)


def _series(results: Mapping[str, Result], ref: str) -> list[Series]:
    found = results.get(ref)
    if found is None:
        msg = f"reference {ref!r} is not defined before use"
        raise EvaluationError(msg)
    if found and not isinstance(found[0], Series):
        msg = f"reduce needs time series, {ref} holds numbers"
        raise EvaluationError(msg)
    return [item for item in found if isinstance(item, Series)]


def _numbers(result: Result) -> list[Number]:
    if result and not isinstance(result[0], Number):
        msg = "the expression needs numbers: reduce the time series first"
        raise EvaluationError(msg)
    return [item for item in result if isinstance(item, Number)]


_REDUCERS: dict[str, Callable[[list[float]], float]] = {
    "last": lambda v: v[-1] if v else math.nan,
    "mean": lambda v: sum(v) / len(v) if v else math.nan,
    "min": lambda v: min(v) if v else math.nan,
    "max": lambda v: max(v) if v else math.nan,
    "sum": lambda v: float(sum(v)),
    "count": lambda v: float(len(v)),
}


def _reduce(series: list[Series], model: Mapping[str, Any]) -> list[Number]:
    reducer = _REDUCERS.get(model["reducer"])
    if reducer is None:
        msg = f"reducer {model['reducer']!r} is not one of {sorted(_REDUCERS)}"
        raise EvaluationError(msg)
    settings = model.get("settings") or {}
    mode = settings.get("mode", "")
    found = []
    for frame in series:
        values = [math.nan if v is None else v for v in frame.values]
        if mode == "dropNN":
            values = [v for v in values if not math.isnan(v)]
        elif mode == "replaceNN":
            replacement = float(settings.get("replaceWithValue", 0))
            values = [replacement if math.isnan(v) else v for v in values]
        # Strict (Grafana's default): a NaN anywhere makes the mean/sum NaN, as in Go.
        found.append(Number(frame.labels, reducer(values)))
    return found


def _threshold(numbers: list[Number], model: Mapping[str, Any], nan: list[int]) -> list[Number]:
    """Grafana runs a threshold as the math expression it stands for ($B > 5, ...)."""
    (condition,) = model["conditions"]
    evaluator = condition["evaluator"]
    kind, params = evaluator["type"], [float(p) for p in evaluator["params"]]
    expressions = {
        "gt": "$X > {0}",
        "lt": "$X < {0}",
        "within_range": "$X > {0} && $X < {1}",
        "outside_range": "$X < {0} || $X > {1}",
    }
    if kind not in expressions:
        msg = f"threshold type {kind!r} is not one of {sorted(expressions)}"
        raise EvaluationError(msg)
    return _math(expressions[kind].format(*params), {"X": numbers}, nan)


# ---- math expressions ---------------------------------------------------------------------


def _math(expression: str, results: Mapping[str, Result], nan: list[int]) -> list[Number]:
    refs: dict[str, str] = {}

    def name_of(match: re.Match[str]) -> str:
        ref = match.group(1) or match.group(2)
        refs[f"ref_{len(refs)}"] = ref
        return f"ref_{len(refs) - 1}"

    python = _REF.sub(name_of, expression).replace("&&", " and ").replace("||", " or ")
    python = re.sub(r"!(?!=)", " not ", python)
    try:
        tree = ast.parse(python, mode="eval").body
    except SyntaxError as exc:
        msg = f"math expression {expression!r} does not parse: {exc.msg}"
        raise EvaluationError(msg) from exc
    operands = {name: _numbers(results.get(ref, [])) for name, ref in refs.items()}
    if len(set(refs.values())) == 1:
        # One input: item by item, so two items with the same labels stay two (and the
        # condition check reports them) instead of being merged by the join below.
        (numbers,) = {ref: operands[name] for name, ref in refs.items()}.values()
        return [
            Number(
                n.labels,
                None if n.value is None else _calculate(tree, dict.fromkeys(refs, n.value), nan),
            )
            for n in numbers
        ]
    found = []
    for labels in _joined_labels(list(operands.values())):
        values = {name: _value_for(numbers, labels) for name, numbers in operands.items()}
        if any(value is None for value in values.values()):
            found.append(Number(labels, None))
            continue
        found.append(Number(labels, _calculate(tree, values, nan)))
    return found


def _joined_labels(operands: Sequence[list[Number]]) -> list[Labels]:
    """Grafana's union: items of different operands meet where their labels are equal; an
    operand of one unlabelled item applies to every label set."""
    labelled = [numbers for numbers in operands if not _is_scalar(numbers)]
    if not labelled:
        return [()] if operands and all(operands) else []
    common = {number.labels for number in labelled[0]}
    for numbers in labelled[1:]:
        common &= {number.labels for number in numbers}
    return sorted(common)


def _is_scalar(numbers: list[Number]) -> bool:
    return len(numbers) == 1 and numbers[0].labels == ()


def _value_for(numbers: list[Number], labels: Labels) -> float | None:
    if _is_scalar(numbers):
        return numbers[0].value
    return next((n.value for n in numbers if n.labels == labels), None)


_COMPARE: dict[type[ast.cmpop], Callable[[float, float], bool]] = {
    ast.Gt: lambda a, b: a > b,
    ast.Lt: lambda a, b: a < b,
    ast.GtE: lambda a, b: a >= b,
    ast.LtE: lambda a, b: a <= b,
    ast.Eq: lambda a, b: a == b,
    ast.NotEq: lambda a, b: a != b,
}
_ARITHMETIC: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b if b else (math.copysign(math.inf, a) if a else math.nan),
}


def _logical(is_and: bool, a: float, b: float) -> float:
    """Grafana's && and ||: short-circuit on the left operand first, then NaN wins."""
    if is_and and a == 0:
        return 0.0
    if not is_and and a != 0:  # NaN != 0: a NaN on the left of || is true
        return 1.0
    if math.isnan(a) or math.isnan(b):
        return math.nan
    return float(a != 0 and b != 0) if is_and else float(a != 0 or b != 0)


def _calculate(node: ast.expr, values: Mapping[str, float | None], nan: list[int]) -> float:
    """One value of a math expression, with the float rules of Grafana's mathexp (Go): an
    operation on NaN gives NaN, comparisons included."""
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return float(node.value)
    if isinstance(node, ast.Name) and node.id in values:
        value = values[node.id]
        return math.nan if value is None else value
    if isinstance(node, ast.BoolOp):
        return _bool_op(node, values, nan)
    if isinstance(node, ast.UnaryOp):
        operand = _calculate(node.operand, values, nan)
        return float(operand == 0) if isinstance(node.op, ast.Not) else -operand
    if isinstance(node, ast.BinOp) and type(node.op) in _ARITHMETIC:
        left, right = _calculate(node.left, values, nan), _calculate(node.right, values, nan)
        return _ARITHMETIC[type(node.op)](left, right)
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _COMPARE:
        return _compare(node, values, nan)
    msg = f"math: {ast.unparse(node)!r} is not supported"
    raise EvaluationError(msg)


def _bool_op(node: ast.BoolOp, values: Mapping[str, float | None], nan: list[int]) -> float:
    result = _calculate(node.values[0], values, nan)
    for item in node.values[1:]:
        result = _logical(isinstance(node.op, ast.And), result, _calculate(item, values, nan))
    return result


def _compare(node: ast.Compare, values: Mapping[str, float | None], nan: list[int]) -> float:
    left = _calculate(node.left, values, nan)
    right = _calculate(node.comparators[0], values, nan)
    if math.isnan(left) or math.isnan(right):
        nan[0] += 1
        return math.nan
    return float(_COMPARE[type(node.ops[0])](left, right))


# ---- states over time ---------------------------------------------------------------------

_RULE_INSTANCE: Labels = ()  # No Data and Error belong to the rule, not to a series


class RuleStates:
    """One rule's alert instances across evaluations (Grafana's state manager, simplified)."""

    def __init__(self, rule: Mapping[str, Any]) -> None:
        self.rule = rule
        self.for_ms = parse_duration_s(rule.get("for", "0s")) * 1000
        self.no_data_state: str = rule.get("noDataState", "NoData")
        self.exec_err_state: str = rule.get("execErrState", "Error")
        self.instances: dict[Labels, Instance] = {}
        self.history = History(rule["uid"])

    def apply(self, outcome: Outcome) -> None:
        history = self.history
        history.evaluations += 1
        history.nan_conditions += outcome.nan_conditions
        seen: set[Labels] = set()
        if outcome.error is not None:
            history.errors.append((outcome.at_ms, outcome.error))
            seen.add(_RULE_INSTANCE)
            self._special(outcome.at_ms, self.exec_err_state, "Error")
        elif outcome.no_data:
            history.no_data += 1
            seen.add(_RULE_INSTANCE)
            self._special(outcome.at_ms, self.no_data_state, "NoData")
        else:
            for labels, value in outcome.numbers.items():
                seen.add(labels)
                self._step(labels, outcome.at_ms, firing=value is not None and value != 0)
        self._resolve_missing(seen)
        for labels, instance in self.instances.items():
            if instance.state == "Alerting":
                history.alerting.append((labels, outcome.at_ms))
            elif instance.state == "Pending":
                history.pending += 1

    def _special(self, at_ms: int, setting: str, own_state: State) -> None:
        if setting == "Alerting":
            self._step(_RULE_INSTANCE, at_ms, firing=True)
        elif setting == "OK":
            self._step(_RULE_INSTANCE, at_ms, firing=False)
        elif setting != "KeepLast":
            instance = self.instances.setdefault(_RULE_INSTANCE, Instance())
            instance.state, instance.missing = own_state, 0

    def _step(self, labels: Labels, at_ms: int, *, firing: bool) -> None:
        instance = self.instances.setdefault(labels, Instance())
        instance.missing = 0
        if not firing:
            instance.state, instance.active_since_ms = "Normal", None
            return
        if instance.active_since_ms is None or instance.state not in ("Pending", "Alerting"):
            instance.active_since_ms = at_ms
        held_ms = at_ms - instance.active_since_ms
        instance.state = "Alerting" if held_ms >= self.for_ms else "Pending"

    def _resolve_missing(self, seen: set[Labels]) -> None:
        for labels, instance in list(self.instances.items()):
            if labels in seen:
                continue
            instance.missing += 1
            if instance.missing >= MISSING_EVALUATIONS_TO_RESOLVE or labels == _RULE_INSTANCE:
                del self.instances[labels]


def play(
    rules: Iterable[Mapping[str, Any]], run_query: RunQuery, times_ms: Sequence[int]
) -> dict[str, History]:
    """Evaluate every rule at every instant, in order; each rule's history by uid."""
    histories = {}
    for rule in rules:
        states = RuleStates(rule)
        for at_ms in times_ms:
            states.apply(evaluate(rule, run_query, at_ms))
        histories[rule["uid"]] = states.history
    return histories


def provisioned_rules(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The rules of a provisioning document (`groups[].rules[]`)."""
    return [rule for group in document["groups"] for rule in group["rules"]]
