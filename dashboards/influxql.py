"""InfluxQL targets for the foundation SDK, and the few InfluxQL idioms the dashboards share.

The SDK generates a typed builder per data source plugin from Grafana's schemas; the InfluxDB
plugin publishes none (its query model is a plain `{query, rawQuery, resultFormat}`), so the
SDK has no InfluxDB builder. `InfluxQLQuery` plugs into the SDK's own extension point instead:
it is a `cog.variants.Dataquery` (what `Panel.with_target` and `alerting.Query.model` accept)
and serialises to the model Grafana's InfluxDB data source reads in InfluxQL mode.

Every query is raw InfluxQL using only what InfluxDB 1.x, 2.x (through its v1 /query API) and
3.x all implement: aggregates, selectors, `non_negative_derivative`/`_difference`, `ceil` and
`floor`, subqueries, GROUP BY time and tags.
"""

from __future__ import annotations

from typing import Literal, Self

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models.dashboard import DataSourceRef

DATASOURCE_UID = "influxdb-telemetry"  # dashboards/provisioning/datasources/influxdb.yaml
DATASOURCE = DataSourceRef(type_val="influxdb", uid=DATASOURCE_UID)

ResultFormat = Literal["time_series", "table"]

# Grafana's filters for the dashboards' template variables: "All" is `.*` (allValue), a
# multi-value selection becomes `(a|b)`; anchored, as Grafana's own InfluxQL editor writes them.
DISTRICT = '"district" =~ /^$district$/'
DEVICE = '"device_id" =~ /^$device$/'
DEVICE_FILTER = f"{DISTRICT} AND {DEVICE}"
INSTANCE = '"instance" =~ /^$instance$/'


class InfluxQLQuery(cogvariants.Dataquery):
    """One raw InfluxQL target, as Grafana's InfluxDB data source stores it."""

    def __init__(self, query: str, ref_id: str, alias: str | None, result_format: ResultFormat):
        self.query = query
        self.ref_id = ref_id
        self.alias = alias
        self.result_format = result_format

    def to_json(self) -> dict[str, object]:
        payload: dict[str, object] = {
            "datasource": DATASOURCE.to_json(),
            "query": self.query,
            "rawQuery": True,
            "refId": self.ref_id,
            "resultFormat": self.result_format,
        }
        if self.alias is not None:
            # Grafana's alias patterns: $tag_<key>, $m (measurement), $col (column).
            payload["alias"] = self.alias
        return payload


class InfluxQL(cogbuilder.Builder[cogvariants.Dataquery]):
    """Builder for `InfluxQLQuery`, in the SDK's fluent style."""

    def __init__(self, query: str) -> None:
        self._internal = InfluxQLQuery(" ".join(query.split()), "A", None, "time_series")

    def build(self) -> InfluxQLQuery:
        return self._internal

    def ref_id(self, ref_id: str) -> Self:
        self._internal.ref_id = ref_id
        return self

    def alias(self, alias: str) -> Self:
        self._internal.alias = alias
        return self

    def table(self) -> Self:
        self._internal.result_format = "table"
        return self


# ---- flags ---------------------------------------------------------------------------------
# InfluxQL has no CASE or comparison operators in SELECT. Alarm counts are sums of 0/1 flags
# instead of `count() ... WHERE value > limit`, because the latter returns no series at all
# when nothing is in alarm, which Grafana shows as "No data", the same as a broken pipeline.
# For x >= 0 and a limit L > 0, q = floor(x / L) is 0 below L and >= 1 from L on, and
# ceil(q / (q + 1)) squeezes that into 0 or 1.


def nonzero(expr: str) -> str:
    """1 when the non-negative integer `expr` is not 0 (a fault code), else 0."""
    return f"ceil({expr} / ({expr} + 1))"


def at_least(expr: str, limit: float) -> str:
    """1 when the non-negative `expr` is at or above `limit`, else 0."""
    quotient = f"floor({expr} / {limit})"
    return f"ceil({quotient} / ({quotient} + 1))"


def below(expr: str, limit: float) -> str:
    """1 when the non-negative `expr` is below `limit`, else 0."""
    return f"(1 - {at_least(expr, limit)})"
