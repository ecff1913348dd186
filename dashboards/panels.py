"""Panel, variable and dashboard shapes shared by every dashboard, so they all look alike.

Each helper takes what differs (Vietnamese title, English description, unit, queries) and sets
what must never be forgotten: the data source, the unit, the size on the grid.
"""

from __future__ import annotations

from collections.abc import Sequence

from grafana_foundation_sdk.builders import bargauge, common, dashboard, stat, statetimeline
from grafana_foundation_sdk.builders import table as table_panel
from grafana_foundation_sdk.builders import timeseries as timeseries_panel
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models import common as common_model
from grafana_foundation_sdk.models import dashboard as model

from dashboards.influxql import DATASOURCE, DISTRICT, InfluxQL

PanelBuilder = cogbuilder.Builder[model.Panel]
Steps = Sequence[tuple[float | None, str]]

FOLDER = "Mỹ Hào"  # dashboards/provisioning/dashboards/provider.yaml
# The folder's uid, the same in provider.yaml and for `gateway dashboards push`, so both ways
# of installing the dashboards name one folder.
FOLDER_UID = "mh-town"
TAG = "mh-gateway"  # every dashboard carries it; the dashboard links list them by it
TIMEZONE = "Asia/Ho_Chi_Minh"  # operators read local time; Viet Nam keeps UTC+7 all year

# Grafana unit ids (https://github.com/grafana/grafana/blob/main/packages/grafana-data/src/valueFormats/categories.ts)
COUNT = "short"
PERCENT = "percent"

HALF = 12
THIRD = 8
QUARTER = 6
FULL = 24
HEIGHT = 8
STAT_HEIGHT = 5


def thresholds(steps: Steps) -> dashboard.ThresholdsConfig:
    """Absolute steps: (from value, colour); the first step's value is None (minus infinity)."""
    return (
        dashboard.ThresholdsConfig()
        .mode(model.ThresholdsMode.ABSOLUTE)
        .steps([model.Threshold(value=value, color=color) for value, color in steps])
    )


# Alarm counts: 0 is good, anything else is red (a fault) or orange (degraded service).
OK_UNLESS_ANY: Steps = ((None, "green"), (1, "red"))
WARN_UNLESS_ANY: Steps = ((None, "green"), (1, "orange"))


def timeseries(
    title: str,
    description: str,
    unit: str,
    queries: Sequence[InfluxQL],
    *,
    steps: Steps | None = None,
    min_interval: str | None = None,
    width: int = HALF,
    bars: bool = False,
) -> timeseries_panel.Panel:
    panel = (
        timeseries_panel.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .targets(list(queries))
        .span(width)
        .height(HEIGHT)
        .legend(
            common.VizLegendOptions()
            .display_mode(common_model.LegendDisplayMode.LIST)
            .placement(common_model.LegendPlacement.BOTTOM)
            .show_legend(True)
        )
    )
    if bars:
        panel = panel.draw_style(common_model.GraphDrawStyle.BARS).fill_opacity(60)
    if min_interval is not None:
        # Grafana's $__interval never goes below this: one bucket holds one report of each
        # device, so sums over devices do not jump with the zoom level.
        panel = panel.interval(min_interval)
    if steps is not None:
        # Limits are drawn as lines on the graph, so a reading is judged at a glance.
        panel = panel.thresholds(thresholds(steps)).thresholds_style(
            common.GraphThresholdsStyleConfig().mode(common_model.GraphThresholdsStyleMode.DASHED)
        )
    return panel


def stat_panel(
    title: str,
    description: str,
    unit: str,
    queries: Sequence[InfluxQL],
    *,
    steps: Steps | None = None,
    width: int = QUARTER,
) -> stat.Panel:
    panel = (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .targets(list(queries))
        .span(width)
        .height(STAT_HEIGHT)
        .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .text_mode(common_model.BigValueTextMode.VALUE_AND_NAME)
        .color_mode(common_model.BigValueColorMode.BACKGROUND)
        .graph_mode(common_model.BigValueGraphMode.NONE)
    )
    if unit == COUNT:
        # InfluxQL's count() over no rows returns no row at all; for a count that absence
        # means zero (no device reporting, no lamp in fault), not "No data".
        panel = panel.no_value("0")
    if steps is not None:
        panel = panel.thresholds(thresholds(steps))
    return panel


def gauge_bars(
    title: str,
    description: str,
    unit: str,
    queries: Sequence[InfluxQL],
    *,
    steps: Steps,
    max_value: float,
    width: int = HALF,
) -> bargauge.Panel:
    return (
        bargauge.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .targets(list(queries))
        .span(width)
        .height(HEIGHT)
        .min(0)
        .max(max_value)
        .thresholds(thresholds(steps))
        .orientation(common_model.VizOrientation.HORIZONTAL)
        .display_mode(common_model.BarGaugeDisplayMode.GRADIENT)
        .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )


def table(
    title: str,
    description: str,
    unit: str,
    queries: Sequence[InfluxQL],
    *,
    transformations: Sequence[model.DataTransformerConfig] = (),
    width: int = HALF,
) -> table_panel.Panel:
    return (
        table_panel.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .targets(list(queries))
        .transformations(list(transformations))
        .span(width)
        .height(HEIGHT)
    )


def state_timeline(
    title: str,
    description: str,
    queries: Sequence[InfluxQL],
    states: dict[int, tuple[str, str]],
    *,
    width: int = HALF,
) -> statetimeline.Panel:
    """Integer states drawn as coloured bands; `states` maps value -> (label, colour)."""
    mapping = model.ValueMap(
        options={
            str(value): model.ValueMappingResult(text=text, color=color, index=index)
            for index, (value, (text, color)) in enumerate(sorted(states.items()))
        }
    )
    return (
        statetimeline.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit("none")  # a state is a label, not a quantity
        .targets(list(queries))
        .mappings([mapping])
        .span(width)
        .height(HEIGHT)
        .show_value(common_model.VisibilityMode.NEVER)
        .merge_values(True)
    )


# ---- variables -----------------------------------------------------------------------------


def _from(measurements: Sequence[str]) -> str:
    return ", ".join(f'"{name}"' for name in measurements)


def _tag_variable(name: str, label: str, query: str) -> dashboard.QueryVariable:
    # "All" sends `.*` instead of a list of every value, so the regex stays short in a town
    # with thousands of devices.
    return (
        dashboard.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query(query)
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .current(model.VariableOption(selected=True, text="All", value="$__all"))
    )


def district_variable(measurements: Sequence[str]) -> dashboard.QueryVariable:
    query = f'SHOW TAG VALUES FROM {_from(measurements)} WITH KEY = "district"'
    return _tag_variable("district", "Phường", query)


def device_variable(measurements: Sequence[str]) -> dashboard.QueryVariable:
    query = f'SHOW TAG VALUES FROM {_from(measurements)} WITH KEY = "device_id" WHERE {DISTRICT}'
    return _tag_variable("device", "Thiết bị", query)


def instance_variable() -> dashboard.QueryVariable:
    query = 'SHOW TAG VALUES FROM "gateway_health" WITH KEY = "instance"'
    return _tag_variable("instance", "Gateway", query)


# ---- dashboards ----------------------------------------------------------------------------


def town_dashboard(
    uid: str,
    title: str,
    description: str,
    *,
    time_from: str,
    variables: Sequence[dashboard.QueryVariable],
    rows: Sequence[tuple[str, Sequence[PanelBuilder]]],
) -> model.Dashboard:
    """A dashboard of rows of panels, numbered top to bottom."""
    builder = (
        dashboard.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags([TAG])
        .readonly()
        .time(time_from, "now")
        .timezone(TIMEZONE)
        .refresh("1m")
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .variables(list(variables))
        .link(
            dashboard.DashboardLink("Bảng điều khiển Mỹ Hào")
            .type(model.DashboardLinkType.DASHBOARDS)
            .tags([TAG])
            .as_dropdown(True)
            .keep_time(True)
            .include_vars(False)
        )
    )
    for row_title, panels in rows:
        builder = builder.with_row(dashboard.Row(row_title))
        for panel in panels:
            builder = builder.with_panel(panel)
    built = builder.build()
    for number, placed in enumerate(built.panels or [], start=1):
        placed.id_val = number
    return built
