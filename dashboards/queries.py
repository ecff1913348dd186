"""Every InfluxQL statement the dashboards and alert rules send, and Grafana's substitutions.

Grafana does not send a panel's query as written: it replaces its macros (`$timeFilter`,
`$__interval`) and the template variables first. `substitute` does the same, so the query test
(tests/test_dashboards.py) and the pictures (`render.py`) run exactly what Grafana would.
Works on the generated JSON, not on the SDK objects, so it needs no SDK at run time.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from dashboards.influxql import DATASOURCE_UID

# The dashboards' default selection: "All", which Grafana sends as the variables' allValue.
ALL = ".*"
VARIABLES = ("district", "device", "instance")
_LEFTOVER = re.compile(r"\$[A-Za-z_]\w*")


class UnsubstitutedError(ValueError):
    """A query still holds a `$name` after substitution: a macro or variable nobody fills."""


@dataclass(frozen=True, slots=True)
class Query:
    """One InfluxQL statement Grafana would send, and where it comes from."""

    dashboard: str
    panel: str
    ref_id: str
    influxql: str
    time_filter: str  # what $timeFilter becomes


def panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """The panels that query something (rows are only headings)."""
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            yield panel


def dashboard_queries(dashboard: Mapping[str, Any], time_filter: str) -> list[Query]:
    """The template variables' queries and every panel target of one dashboard."""
    name = dashboard["uid"]
    found = [
        Query(name, f"${variable['name']}", "var", variable["query"], time_filter)
        for variable in dashboard["templating"]["list"]
    ]
    for panel in panels(dashboard):
        found.extend(
            Query(name, panel["title"], target["refId"], target["query"], time_filter)
            for target in panel["targets"]
        )
    return found


def alert_queries(rules_document: Mapping[str, Any]) -> list[Query]:
    """The InfluxQL query of every alert rule, over the rule's own window."""
    found = []
    for group in rules_document["groups"]:
        for rule in group["rules"]:
            for data in rule["data"]:
                if data["datasourceUid"] != DATASOURCE_UID:
                    continue  # server-side expressions (reduce, threshold)
                window_s = data["relativeTimeRange"]["from"]
                found.append(
                    Query(
                        "alert",
                        rule["uid"],
                        data["refId"],
                        data["model"]["query"],
                        f"time > now() - {window_s}s",
                    )
                )
    return found


def substitute(query: Query, interval: str = "1m", value: str = ALL) -> str:
    """The statement as Grafana sends it: `$timeFilter`, `$__interval`, and every variable
    set to `value` (by default "All", i.e. the allValue `.*`)."""
    text = query.influxql.replace("$timeFilter", query.time_filter)
    text = text.replace("$__interval", interval)
    for variable in VARIABLES:
        text = text.replace(f"${variable}", value)
    leftover = _LEFTOVER.search(text)
    if leftover is not None:
        raise UnsubstitutedError(
            f"{query.dashboard}/{query.panel}: {leftover.group()} not substituted"
        )
    return text
