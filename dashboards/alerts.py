"""Grafana-managed alert rules on the same InfluxQL and thresholds as the dashboards.

Every rule is: A, an InfluxQL query over the rule's window, one series per district, device or
gateway (each becomes its own alert instance, so no two series may share their tags: Grafana
refuses a result whose frames it cannot tell apart by labels); B, the last value of each series;
C, the threshold. A rule that also needs a minimum count (`Minimum`) has a second query and
reduction and a math condition joining both. Rules carry `domain` and `severity` labels for the
operator's notification policy; no contact point is provisioned (docs/dashboards.md).
`dashboards/evaluation.py` evaluates these rules the way Grafana does, for the tests.
"""

# ruff: noqa: S608  # Grafana InfluxQL templates built from constants, never from input

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from grafana_foundation_sdk.builders import alerting, expr
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models import alerting as alerting_model
from grafana_foundation_sdk.models import dashboard as dashboard_model

from dashboards import limits
from dashboards.influxql import DATASOURCE_UID, InfluxQL, nonzero
from dashboards.panels import FOLDER

EXPRESSIONS_UID = "__expr__"  # Grafana's server-side expressions
Evaluator = Literal["gt", "lt", "outside_range"]
NoDataState = Literal["Alerting", "NoData", "OK"]


@dataclass(frozen=True, slots=True)
class Minimum:
    """A second condition: `query` (same series as the rule's) must also reach `count`."""

    query: str
    count: int


@dataclass(frozen=True, slots=True)
class RuleSpec:
    uid: str
    title: str  # Vietnamese, what the on-call person reads first
    summary: str  # English, with the figures
    query: str  # InfluxQL with $timeFilter; one series per alert instance
    window_s: int  # $timeFilter covers the last window_s seconds
    evaluator: Evaluator
    params: tuple[float, ...]
    for_: str  # how long the condition must hold before the alert fires
    domain: str
    severity: Literal["warning", "critical"]
    no_data: NoDataState = "OK"  # a quiet sensor is the stale-device panel's business
    minimum: Minimum | None = None


@dataclass(frozen=True, slots=True)
class Group:
    name: str
    interval: str
    rules: Sequence[RuleSpec]


_FAULTY_LAMPS = f"""(SELECT {nonzero('last("fault_code")')} AS "faulty" FROM "streetlight"
    WHERE $timeFilter GROUP BY "district", "device_id")"""
# A share alone misleads in small districts: one dark lamp of three is 33 %. A crew is sent
# when both the share and the count are reached.
LAMP_FAULT_RATE = RuleSpec(
    uid="mh-lamp-fault-rate",
    title="Tỷ lệ đèn lỗi cao",
    summary=f"More than {limits.LAMP_FAULT_RATE_PCT:.0f} % and at least "
    f"{limits.LAMP_FAULT_MIN_COUNT} of the street lights of a district report a fault code.",
    query=f'SELECT mean("faulty") * 100 FROM {_FAULTY_LAMPS} GROUP BY "district"',
    window_s=900,
    evaluator="gt",
    params=(limits.LAMP_FAULT_RATE_PCT,),
    for_="15m",
    domain="lighting",
    severity="warning",
    minimum=Minimum(
        f'SELECT sum("faulty") FROM {_FAULTY_LAMPS} GROUP BY "district"',
        limits.LAMP_FAULT_MIN_COUNT,
    ),
)
LOW_PRESSURE = RuleSpec(
    uid="mh-water-pressure-low",
    title="Áp lực mạng cấp nước thấp",
    summary=f"The network pressure at a flow meter or pressure logger stayed below "
    f"{limits.PRESSURE_LOW_BAR} bar (TCVN 33:2006 minimum free head for a one-storey house).",
    # One series per device: grouped by district only, a district with both a flow meter and a
    # pressure logger would give two series with the same labels, which Grafana refuses.
    query="""SELECT min("pressure_bar") FROM "water_flow", "water_pressure"
        WHERE $timeFilter GROUP BY "district", "device_id" """,
    window_s=900,
    evaluator="lt",
    params=(limits.PRESSURE_LOW_BAR,),
    for_="10m",
    domain="water",
    severity="critical",
)


def _quality(
    uid: str, title: str, field: str, *, what: str, ev: Evaluator, params: tuple[float, ...]
) -> RuleSpec:
    return RuleSpec(
        uid=uid,
        title=title,
        summary=f"{what} at a water-quality probe is outside the QCVN 01-1:2018/BYT "
        "drinking-water limits.",
        query=f"""SELECT last("{field}") FROM "water_quality" WHERE $timeFilter
            GROUP BY "district", "device_id" """,
        window_s=900,
        evaluator=ev,
        params=params,
        for_="10m",
        domain="water",
        severity="critical",
    )


WATER_QUALITY = (
    _quality(
        "mh-water-ph",
        "pH nước ngoài giới hạn",
        "ph",
        what=f"pH (limits {limits.PH_MIN}-{limits.PH_MAX})",
        ev="outside_range",
        params=(limits.PH_MIN, limits.PH_MAX),
    ),
    _quality(
        "mh-water-turbidity",
        "Độ đục nước vượt giới hạn",
        "turbidity_ntu",
        what=f"Turbidity (limit {limits.TURBIDITY_MAX_NTU} NTU)",
        ev="gt",
        params=(limits.TURBIDITY_MAX_NTU,),
    ),
    _quality(
        "mh-water-chlorine",
        "Clo dư ngoài giới hạn",
        "free_chlorine_mgl",
        what=f"Free chlorine (limits {limits.CHLORINE_MIN_MGL}-{limits.CHLORINE_MAX_MGL} mg/L)",
        ev="outside_range",
        params=(limits.CHLORINE_MIN_MGL, limits.CHLORINE_MAX_MGL),
    ),
)
SPOOL_GROWING = RuleSpec(
    uid="mh-gateway-spool-growing",
    title="Spool của gateway đang tăng",
    summary="The gateway's disk spool held more points at the end of each of the last 15 "
    "minutes than at their start: InfluxDB is not taking its writes.",
    query="""SELECT last("spool_points") - first("spool_points") FROM "gateway_health"
        WHERE $timeFilter GROUP BY "instance" """,
    window_s=900,
    evaluator="gt",
    params=(0,),
    for_="15m",
    domain="gateway",
    severity="warning",
)
DEAD_LETTERS_RISING = RuleSpec(
    uid="mh-gateway-dead-letters",
    title="Thư chết của gateway đang tăng",
    summary="The gateway kept new messages as dead letters in the last 15 minutes: a device "
    "sends what its profile cannot read (`gateway deadletter list`).",
    query="""SELECT sum("new") FROM (SELECT non_negative_difference(last("dead_letters")) AS "new"
        FROM "gateway_health" WHERE $timeFilter GROUP BY time(1m), "instance" fill(none))
        GROUP BY "instance" """,
    window_s=900,
    evaluator="gt",
    params=(0,),
    for_="5m",
    domain="gateway",
    severity="warning",
)
NOT_WRITING = RuleSpec(
    uid="mh-gateway-not-writing",
    title="Gateway không ghi dữ liệu",
    summary="No device reading reached InfluxDB from this gateway for 10 minutes. No "
    "self-metrics at all (no data) means the gateway is down or cannot reach InfluxDB.",
    # Device domains only: the gateway's own figures (domain "gateway") keep being written by a
    # gateway that receives nothing, and would hide exactly that.
    query="""SELECT sum("written") FROM (SELECT non_negative_difference(last("value"))
        AS "written" FROM "gateway_counters" WHERE $timeFilter AND "kind" = 'points_written'
        AND "domain" != 'gateway' GROUP BY time(1m), "instance", "domain" fill(none))
        GROUP BY "instance" """,
    window_s=600,
    evaluator="lt",
    params=(1,),
    for_="5m",
    domain="gateway",
    severity="critical",
    no_data="Alerting",
)

GROUPS = (
    Group("Chiếu sáng", "1m", (LAMP_FAULT_RATE,)),
    Group("Cấp nước", "1m", (LOW_PRESSURE, *WATER_QUALITY)),
    Group("Gateway", "1m", (SPOOL_GROWING, DEAD_LETTERS_RISING, NOT_WRITING)),
)
RULES = tuple(rule for group in GROUPS for rule in group.rules)


def _influxql(ref_id: str, query: str, window_s: int) -> alerting.Query:
    window = alerting_model.RelativeTimeRange(from_val=window_s, to=0)
    return (
        alerting.Query(ref_id)
        .datasource_uid(DATASOURCE_UID)
        .relative_time_range(window)
        .model(InfluxQL(query).ref_id(ref_id))
    )


def _expression(ref_id: str, model: Any) -> alerting.Query:
    return alerting.Query(ref_id).datasource_uid(EXPRESSIONS_UID).model(model)


def _last(ref_id: str, source: str) -> alerting.Query:
    reduce = expr.TypeReduce().ref_id(ref_id).expression(source).reducer("last")
    return _expression(ref_id, reduce.datasource(_EXPRESSIONS))


_EXPRESSIONS = dashboard_model.DataSourceRef(type_val=EXPRESSIONS_UID, uid=EXPRESSIONS_UID)


_Data = list[cogbuilder.Builder[alerting_model.Query]]


def _data(spec: RuleSpec) -> tuple[_Data, str]:
    """The rule's queries and expressions, and the refId of its condition."""
    if spec.minimum is not None:
        if spec.evaluator != "gt":
            msg = f"{spec.uid}: a minimum count combines only with a 'gt' threshold"
            raise ValueError(msg)
        (limit,) = spec.params
        condition = f"$C > {limit} && $D >= {spec.minimum.count}"
        math = expr.TypeMath().ref_id("E").expression(condition).datasource(_EXPRESSIONS)
        data: _Data = [
            _influxql("A", spec.query, spec.window_s),
            _influxql("B", spec.minimum.query, spec.window_s),
            _last("C", "A"),
            _last("D", "B"),
            _expression("E", math),
        ]
        return data, "E"
    evaluator = expr.ExprTypeThresholdConditionsEvaluator().type(spec.evaluator)
    threshold = (
        expr.TypeThreshold()
        .ref_id("C")
        .expression("B")
        .datasource(_EXPRESSIONS)
        .conditions(
            [expr.ExprTypeThresholdConditions().evaluator(evaluator.params(list(spec.params)))]
        )
    )
    data = [
        _influxql("A", spec.query, spec.window_s),
        _last("B", "A"),
        _expression("C", threshold),
    ]
    return data, "C"


def _rule(spec: RuleSpec) -> alerting.Rule:
    data, condition = _data(spec)
    return (
        alerting.Rule(spec.title)
        .uid(spec.uid)
        .condition(condition)
        .queries(data)
        .for_val(spec.for_)
        .no_data_state(spec.no_data)
        .exec_err_state("Error")
        .labels({"domain": spec.domain, "severity": spec.severity})
        .annotations({"summary": spec.summary})
    )


# Keys of the API's rule model that the provisioning file format (AlertRuleV1) does not have:
# the group and folder are given once per group there, the org per file.
_API_ONLY_KEYS = ("folderUID", "orgID", "ruleGroup")


def provisioning_document(encode: Callable[[object], dict[str, Any]]) -> dict[str, Any]:
    """The alert rules as Grafana's file provisioning format (apiVersion 1, `groups`).

    `encode` turns an SDK object into plain JSON data (the SDK's JSONEncoder, round-tripped).
    """
    groups = []
    for group in GROUPS:
        rules = []
        for spec in group.rules:
            rule = encode(_rule(spec).build())
            for key in _API_ONLY_KEYS:
                rule.pop(key, None)
            rules.append(rule)
        groups.append(
            {
                "orgId": 1,
                "name": group.name,
                "folder": FOLDER,
                "interval": group.interval,
                "rules": rules,
            }
        )
    return {"apiVersion": 1, "groups": groups}


_SECONDS_PER_UNIT = {"s": 1, "m": 60, "h": 3600}


def _interval_s(interval: str) -> int:
    """ "1m" -> 60: the provisioning file writes a duration, the HTTP API wants seconds."""
    return int(interval[:-1]) * _SECONDS_PER_UNIT[interval[-1]]


def api_rule_groups(
    encode: Callable[[object], dict[str, Any]], folder_uid: str
) -> list[dict[str, Any]]:
    """The alert rules as the provisioning HTTP API's rule groups (`gateway dashboards push`).

    Each rule names its folder and group itself there; `orgID` is left out because Grafana
    takes the organisation from the credentials.
    """
    groups = []
    for group in GROUPS:
        rules = []
        for spec in group.rules:
            rule = encode(_rule(spec).build())
            rule.pop("orgID", None)
            rule.update({"folderUID": folder_uid, "ruleGroup": group.name})
            rules.append(rule)
        groups.append(
            {
                "title": group.name,
                "folderUid": folder_uid,
                "interval": _interval_s(group.interval),
                "rules": rules,
            }
        )
    return groups
