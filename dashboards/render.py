"""Pictures of the dashboards without Grafana: the same queries, drawn with matplotlib.

Every panel query is sent to InfluxDB exactly as Grafana would send it (`queries.substitute`:
the dashboard's own time range, `$__interval` the way Grafana sizes it, every variable on
"All"), and each dashboard is drawn on Grafana's 24-column grid into one PNG: time series with
their threshold lines, stat panels as big numbers coloured by their thresholds, bar gauges, the
state timeline with its value mappings and the table with its value filter. These are
renderings of the queries, not Grafana screenshots: fonts, legends and colours differ.

matplotlib is the optional `pictures` extra; nothing else in the project imports this module.
"""

from __future__ import annotations

import io
import itertools
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from matplotlib import dates as mdates
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.patches import Rectangle
from PIL import Image

from dashboards.influxread import Column, InfluxReader, Table
from dashboards.queries import Query, substitute

Panel = Mapping[str, Any]

GRID_COLUMNS = 24
WIDTH_IN = 20.0
ROW_UNIT_IN = 0.34  # one unit of gridPos.h (Grafana: 30 px + margin)
HEADER_UNITS = 2.2  # the dashboard's title and the "not a screenshot" line
DPI = 80  # 1600 px wide: every label readable, each file well under 300 KB
PNG_COLOURS = 256  # palette PNG: these pictures have few colours and compress 3-4x better
TIMEZONE = ZoneInfo("Asia/Ho_Chi_Minh")  # the dashboards' timezone
DASHBOARD_PX = 1600  # Grafana asks for one point per pixel of a panel on a screen this wide
# Grafana's roundInterval (@grafana/data rangeutil): below the first number (s), the second.
ROUNDED_INTERVALS_S = (
    (1.5, 1), (3.5, 2), (7.5, 5), (12.5, 10), (17.5, 15), (25, 20), (45, 30), (90, 60),
    (210, 120), (450, 300), (750, 600), (1050, 900), (1500, 1200), (2700, 1800), (5400, 3600),
    (9000, 7200), (16200, 10800), (32400, 21600), (86400, 43200), (604800, 86400),
)  # fmt: skip
LEGEND_MAX = 14
SPARSE_POINTS = 12
MS_PER_DAY = 86_400_000
TITLE_IN = 0.4  # a panel's title strip
TITLE_PT = 11.5
LEGEND_IN = 2.6  # legend column right of a graph
LEGEND_PT = 8.5
MAX_BARS = 60  # more buckets than this draw as a line: bars would be thinner than a pixel

# Grafana's named colours and its classic palette for series.
NAMED_COLOURS = {
    "green": "#73BF69",
    "dark-green": "#37872D",
    "red": "#F2495C",
    "dark-red": "#C4162A",
    "orange": "#FF9830",
    "dark-orange": "#FA6400",
    "yellow": "#FADE2A",
    "dark-yellow": "#E0B400",
    "blue": "#5794F2",
    "dark-blue": "#1F60C4",
    "purple": "#B877D9",
    "text": "#464C54",
}
PALETTE = (
    "#7EB26D", "#EAB839", "#6ED0E0", "#EF843C", "#E24D42", "#1F78C1", "#BA43A9", "#705DA0",
    "#508642", "#CCA300", "#447EBC", "#C15C17", "#890F02", "#0A437C", "#6D1F62", "#584477",
)  # fmt: skip
# Grafana unit ids -> the symbol written on the axis and after stat values.
UNIT_SYMBOLS = {
    "Mbits": "Mb/s",
    "percent": "%",
    "ms": "ms",
    "s": "s",
    "h": "h",
    "cps": "/s",
    "cpm": "/min",
    "volt": "V",
    "watt": "W",
    "kwatth": "kWh",
    "velocitykmh": "km/h",
    "pressurebar": "bar",
    "lengthm": "m",
    "celsius": "°C",
    "humidity": "%RH",
    "ppm": "ppm",
    "short": "",
    "none": "",
}
PANEL_EDGE = "#D0D4DA"
NO_DATA = "Không có dữ liệu (no data)"


@dataclass(frozen=True, slots=True)
class View:
    """What one picture shows: the last `span_s` seconds up to now."""

    span_s: int

    @property
    def time_filter(self) -> str:
        return f"time > now() - {self.span_s}s"

    def interval(self, panel_min: str | None, width_cols: int = GRID_COLUMNS) -> str:
        """Grafana's $__interval: the range over the panel's width in pixels (its
        maxDataPoints), rounded like Grafana, never below the panel's own minimum interval."""
        raw_s = self.span_s / (DASHBOARD_PX * width_cols / GRID_COLUMNS)
        step = next((s for limit, s in ROUNDED_INTERVALS_S if raw_s < limit), 7 * 86400)
        if panel_min:
            step = max(step, duration_s(panel_min))
        return f"{step}s"


def duration_s(text: str) -> int:
    """Grafana's "15m", "10s", "24h", "7d" in seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    return int(text[:-1]) * units[text[-1]]


def default_span_s(dashboard: Mapping[str, Any]) -> int:
    """The dashboard's default range, "now-6h" -> 21600."""
    return duration_s(dashboard["time"]["from"].removeprefix("now-"))


def unit_symbol(unit: str) -> str:
    return (
        unit.removeprefix("suffix:").strip()
        if unit.startswith("suffix:")
        else UNIT_SYMBOLS.get(unit, unit)
    )


def format_value(value: float, unit: str) -> str:
    """A stat value the way an operator reads it: "87 %", "3.2 h", "12"."""
    if unit == "s":
        return _format_seconds(value)
    symbol = unit_symbol(unit)
    if float(value).is_integer():
        text = f"{int(value):,}".replace(",", " ")
    else:
        text = f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}".replace(",", " ")
    return f"{text} {symbol}".strip()


def _format_seconds(value: float) -> str:
    for limit, divisor, symbol in ((60, 1, "s"), (3600, 60, "min"), (86400, 3600, "h")):
        if abs(value) < limit:
            return f"{value / divisor:.3g} {symbol}"
    return f"{value / 86400:.3g} d"


def colour(name: str) -> str:
    return NAMED_COLOURS.get(name, name)


def threshold_colour(panel: Panel, value: float | None) -> str:
    """The colour of the highest threshold step at or below `value` (Grafana's absolute mode)."""
    steps = panel["fieldConfig"]["defaults"].get("thresholds", {}).get("steps", [])
    chosen = "blue"
    for step in steps:
        if step.get("value") is None or (value is not None and value >= step["value"]):
            chosen = step["color"]
    return colour(chosen)


# ---- one dashboard -> one figure -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Picture:
    figure: Figure
    empty_panels: list[str]  # titles of panels whose queries returned no series ("No data")


@dataclass(frozen=True, slots=True)
class Rendered:
    path: Path
    empty_panels: list[str]


def render_dashboard(
    dashboard: Mapping[str, Any], reader: InfluxReader, span_s: int | None = None
) -> Picture:
    """The whole dashboard on Grafana's grid, every panel drawn from its queries' answers."""
    view = View(span_s or default_span_s(dashboard))
    empty = []
    height_units = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in dashboard["panels"])
    total_units = height_units + HEADER_UNITS
    figure = Figure(figsize=(WIDTH_IN, total_units * ROW_UNIT_IN), facecolor="#F4F5F5")
    _draw_header(figure, dashboard, view, total_units)
    for panel in dashboard["panels"]:
        box = _panel_box(panel["gridPos"], total_units)
        if panel["type"] == "row":
            _draw_row_heading(figure, panel["title"], box)
            continue
        answers = _Answers(reader, dashboard["uid"], panel, view)
        _draw_panel(figure, panel, box, answers)
        if not answers.had_data:
            empty.append(panel["title"])
    return Picture(figure, empty)


def _draw_header(figure: Figure, dashboard: Mapping[str, Any], view: View, units: float) -> None:
    top = 1 - 0.55 / units
    figure.text(0.006, top, dashboard["title"], fontsize=20, weight="bold", va="center")
    minutes = view.span_s / 60
    span = f"{minutes:.0f} min" if minutes < 120 else f"{minutes / 60:.0f} h"
    span = f"{minutes / 1440:.0f} days" if minutes >= 2880 else span
    figure.text(
        0.006,
        1 - 1.45 / units,
        f"last {span} to {datetime.now(TIMEZONE):%Y-%m-%d %H:%M} (Asia/Ho_Chi_Minh), every "
        "filter on All. Drawn with matplotlib from the dashboard's own InfluxQL "
        "(gateway dashboards render): a rendering of the same queries, not a Grafana screenshot.",
        fontsize=10.5,
        color="#555",
        va="center",
    )


def _panel_box(grid: Mapping[str, int], total_units: float) -> tuple[float, float, float, float]:
    """Figure fractions (left, bottom, width, height) of a gridPos, with a small gutter."""
    gutter_x, gutter_y = 0.0025, 0.12 / total_units
    left = grid["x"] / GRID_COLUMNS + gutter_x
    width = grid["w"] / GRID_COLUMNS - 2 * gutter_x
    top = 1 - (grid["y"] + HEADER_UNITS) / total_units - gutter_y
    height = grid["h"] / total_units - 2 * gutter_y
    return left, top - height, width, height


def _draw_row_heading(figure: Figure, title: str, box: tuple[float, float, float, float]) -> None:
    left, bottom, _, height = box
    figure.text(left, bottom + height / 2, title, fontsize=14, weight="bold", va="center")


class _Answers:
    """A panel's queries as Grafana sends them, run against InfluxDB."""

    def __init__(self, reader: InfluxReader, uid: str, panel: Panel, view: View) -> None:
        self.reader, self.uid, self.panel, self.view = reader, uid, panel, view
        self.had_data = False

    def _influxql(self, target: Mapping[str, Any]) -> str:
        query = Query(
            self.uid, self.panel["title"], target["refId"], target["query"], self.view.time_filter
        )
        width = self.panel["gridPos"]["w"]
        return substitute(query, interval=self.view.interval(self.panel.get("interval"), width))

    def columns(self) -> list[Column]:
        found = []
        for target in self.panel["targets"]:
            found.extend(self.reader.columns(self._influxql(target), target.get("alias")))
        self.had_data = any(value is not None for column in found for value in column.values)
        return found

    def table(self) -> Table:
        (target,) = self.panel["targets"]
        table = self.reader.table(self._influxql(target))
        self.had_data = bool(table.rows)
        return table


def _draw_panel(
    figure: Figure, panel: Panel, box: tuple[float, float, float, float], answers: _Answers
) -> None:
    left, bottom, width, height = box
    card = figure.add_axes(box)
    card.set_xticks([])
    card.set_yticks([])
    card.set_facecolor("white")
    for spine in card.spines.values():
        spine.set_edgecolor(PANEL_EDGE)
    title_h = TITLE_IN / figure.get_figheight()
    title_chars = int(width * figure.get_figwidth() * 72 / (TITLE_PT * 0.62))
    card.text(0.008, 1 - title_h / 2 / height, _shorten(panel["title"], title_chars),
              fontsize=TITLE_PT, weight="bold", va="center", transform=card.transAxes)  # fmt: skip
    inner = (left, bottom, width, height - title_h)
    draw = DRAWERS.get(panel["type"], _draw_unsupported)
    draw(figure, panel, inner, answers)


# ---- panel kinds ------------------------------------------------------------------------------


def _plot_area(
    figure: Figure, box: tuple[float, float, float, float], legend: bool
) -> tuple[float, float, float, float]:
    """Inside a panel: room for the y labels on the left, time labels below, legend right."""
    left, bottom, width, height = box
    fig_w, fig_h = figure.get_figwidth(), figure.get_figheight()
    pad_left, pad_bottom, pad_top = 0.75 / fig_w, 0.38 / fig_h, 0.08 / fig_h
    legend_w = min(LEGEND_IN / fig_w, 0.3 * width) if legend else 0.15 / fig_w
    return (
        left + pad_left,
        bottom + pad_bottom,
        width - pad_left - legend_w,
        height - pad_bottom - pad_top,
    )


def _draw_timeseries(figure: Figure, panel: Panel, box: Any, answers: _Answers) -> None:
    columns = [c for c in answers.columns() if any(v is not None for v in c.values)]
    ax = figure.add_axes(_plot_area(figure, box, legend=bool(columns)))
    unit = panel["fieldConfig"]["defaults"].get("unit", "")
    bars = panel["fieldConfig"]["defaults"].get("custom", {}).get("drawStyle") == "bars"
    legend_chars = int((LEGEND_IN - 0.6) * 72 / (LEGEND_PT * 0.58))  # minus the line sample
    for index, column in enumerate(columns):
        times = [_date(ms) for ms in column.times_ms]
        values = [math.nan if v is None else v for v in column.values]
        label = _shorten(column.label, legend_chars) if index < LEGEND_MAX else None
        colour_ = PALETTE[index % len(PALETTE)]
        if bars and len(times) <= MAX_BARS:
            _draw_bars(
                ax, times, values, position=(index, len(columns)), colour_=colour_, label=label
            )
            continue
        # A series of a few points would be invisible as a line (Grafana draws points then).
        marker = "o" if len(times) < SPARSE_POINTS else None
        ax.plot(times, values, color=colour_, lw=1.4, marker=marker, ms=3, label=label)
    _draw_threshold_lines(ax, panel)
    _style_time_axis(ax, answers.view)
    _style_value_axis(ax, columns)
    ax.set_ylabel(unit_symbol(unit) or "số lượng", fontsize=10)
    ax.tick_params(labelsize=9)
    ax.grid(alpha=0.3)
    if not columns:
        _no_data(ax)
        return
    extra = len(columns) - LEGEND_MAX
    legend = ax.legend(
        loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=LEGEND_PT, frameon=False
    )
    if extra > 0:
        legend.set_title(f"(+{extra} more)", prop=FontProperties(size=8))


def _draw_bars(
    ax: Axes,
    times: Sequence[float],
    values: Sequence[float],
    *,
    position: tuple[int, int],
    colour_: str,
    label: str | None,
) -> None:
    """Grafana's bar draw style (daily totals), the series side by side in each bucket."""
    index, count = position
    step = min((b - a for a, b in itertools.pairwise(times)), default=1.0)  # days
    width = 0.8 * step / count
    centres = [time_ + step / 2 + (index - (count - 1) / 2) * width for time_ in times]
    ax.bar(centres, values, width=width, color=colour_, alpha=0.85, label=label)


def _style_value_axis(ax: Axes, columns: Sequence[Column]) -> None:
    """Counts that never moved (no dead letters, an empty spool) draw as a line on 0..1 the
    way Grafana does, rather than on matplotlib's +-0.05 around the value."""
    values = {v for c in columns for v in c.values if v is not None}
    if len(values) == 1:
        (only,) = values
        ax.set_ylim(min(0.0, only), max(1.0, only * 1.2))


def _draw_threshold_lines(ax: Axes, panel: Panel) -> None:
    defaults = panel["fieldConfig"]["defaults"]
    style = defaults.get("custom", {}).get("thresholdsStyle", {}).get("mode", "off")
    if style == "off":
        return
    for step in defaults.get("thresholds", {}).get("steps", []):
        if step.get("value") is None:
            continue
        ax.axhline(step["value"], color=colour(step["color"]), ls="--", lw=1.3)
        ax.annotate(
            f"{step['value']:g}", (1.0, step["value"]), xycoords=("axes fraction", "data"),
            xytext=(2, 0), textcoords="offset points", fontsize=8, va="center",
            color=colour(step["color"]),
        )  # fmt: skip


def _style_time_axis(ax: Axes, view: View) -> None:
    now_ms = time.time() * 1000
    ax.set_xlim(_date(now_ms - view.span_s * 1000), _date(now_ms))
    pattern = "%H:%M:%S" if view.span_s < 3600 else "%H:%M" if view.span_s <= 86400 else "%d/%m"
    # matplotlib.dates ships without annotations on these constructors.
    locator = mdates.AutoDateLocator(tz=TIMEZONE, maxticks=8)  # type: ignore[no-untyped-call]  # matplotlib.dates is not annotated
    formatter = mdates.DateFormatter(pattern, tz=TIMEZONE)  # type: ignore[no-untyped-call]  # matplotlib.dates is not annotated
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(formatter)


def _draw_stat(figure: Figure, panel: Panel, box: Any, answers: _Answers) -> None:
    values = [(c.label, c.last()) for c in answers.columns()]
    ax = figure.add_axes(box)
    ax.set_axis_off()
    if not values:
        _no_data(ax)
        return
    unit = panel["fieldConfig"]["defaults"].get("unit", "")
    cols, rows = _stat_grid(len(values), box, figure)
    cell_w_pt = box[2] * figure.get_figwidth() * 72 / cols
    cell_h_pt = box[3] * figure.get_figheight() * 72 / rows
    for index, (label, value) in enumerate(values):
        x, y = index % cols, rows - 1 - index // cols
        cell = Rectangle((x / cols + 0.006, y / rows + 0.04), 1 / cols - 0.012, 1 / rows - 0.08,
                         transform=ax.transAxes, color=threshold_colour(panel, value))  # fmt: skip
        ax.add_patch(cell)
        centre_x = (x + 0.5) / cols
        text = "n/a" if value is None else format_value(value, unit)
        # Sizes from the cell: DejaVu Sans glyphs are about 0.6 em wide.
        value_pt = min(34.0, 0.5 * cell_h_pt, 0.85 * cell_w_pt / (0.62 * len(text)))
        label_pt = min(10.0, 0.17 * cell_h_pt)
        name = _shorten(label, int(0.9 * cell_w_pt / (0.56 * label_pt)))
        ax.text(centre_x, (y + 0.38) / rows, text, ha="center", va="center", fontsize=value_pt,
                weight="bold", color="white", transform=ax.transAxes)  # fmt: skip
        ax.text(centre_x, (y + 0.8) / rows, name, ha="center", va="center", fontsize=label_pt,
                color="white", transform=ax.transAxes)  # fmt: skip


def _stat_grid(count: int, box: Any, figure: Figure) -> tuple[int, int]:
    """Columns and rows for `count` values: wide panels lay them side by side, like Grafana."""
    aspect = (box[2] * figure.get_figwidth()) / (box[3] * figure.get_figheight())
    cols = max(1, min(count, round(math.sqrt(count * aspect / 1.6))))
    return cols, math.ceil(count / cols)


def _draw_bargauge(figure: Figure, panel: Panel, box: Any, answers: _Answers) -> None:
    """Grafana's horizontal bar gauge: the name above each bar, the value at its right end."""
    defaults = panel["fieldConfig"]["defaults"]
    unit = defaults.get("unit", "")
    values = [(c.label, c.last()) for c in answers.columns()]
    _, bottom, _, height = _plot_area(figure, box, legend=False)
    ax = figure.add_axes((box[0] + 0.004, bottom, box[2] - 0.008, height))
    ax.set_axis_off()
    if not values:
        _no_data(ax)
        return
    low, high = defaults.get("min", 0), defaults.get("max", 1)
    rows = range(len(values))
    lengths = [low if v is None else v for _, v in values]
    ax.barh(rows, [high - low] * len(values), left=low, height=0.5, color="#EEF0F2")
    ax.barh(rows, [v - low for v in lengths], left=low, height=0.5,
            color=[threshold_colour(panel, v) for _, v in values])  # fmt: skip
    for row, (label, value) in zip(rows, values, strict=True):
        shown = "n/a" if value is None else format_value(value, unit)
        ax.text(low, row - 0.3, label, va="bottom", fontsize=10)
        ax.text(high, row, f"{shown} ", ha="right", va="center", fontsize=12, weight="bold")
    ax.set_xlim(low, high)
    ax.set_ylim(len(values) - 0.5, -0.9)


def _draw_state_timeline(figure: Figure, panel: Panel, box: Any, answers: _Answers) -> None:
    columns = [c for c in answers.columns() if c.times_ms]
    ax = figure.add_axes(_plot_area(figure, box, legend=True))
    mapping = _value_mapping(panel)
    for row, column in enumerate(columns):
        for start_ms, end_ms, value in _segments(column):
            text, fill = mapping.get(value, (f"{value:g}", "#999999"))
            span = (_date(start_ms), (end_ms - start_ms) / MS_PER_DAY)
            ax.broken_barh([span], (row - 0.4, 0.8), color=fill)
    ax.set_yticks(range(len(columns)), [c.label for c in columns], fontsize=9)
    ax.set_ylim(len(columns) - 0.5, -0.5)
    _style_time_axis(ax, answers.view)
    ax.tick_params(labelsize=9)
    if not columns:
        _no_data(ax)
        return
    for text, fill in mapping.values():
        ax.bar(0, 0, color=fill, label=text)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8.5, frameon=False)


def _value_mapping(panel: Panel) -> dict[float, tuple[str, str]]:
    found = {}
    for mapping in panel["fieldConfig"]["defaults"].get("mappings", []):
        if mapping["type"] == "value":
            for raw, result in mapping["options"].items():
                found[float(raw)] = (result["text"], colour(result.get("color", "blue")))
    return found


def _segments(column: Column) -> Iterable[tuple[int, int, float]]:
    """Each sample's value until the next sample; the last lasts one sampling step."""
    points = [(t, v) for t, v in zip(column.times_ms, column.values, strict=True) if v is not None]
    step_ms = points[-1][0] - points[-2][0] if len(points) > 1 else 60_000
    for index, (start, value) in enumerate(points):
        end = points[index + 1][0] if index + 1 < len(points) else start + step_ms
        yield start, end, value


def _draw_table(figure: Figure, panel: Panel, box: Any, answers: _Answers) -> None:
    table = _filtered(panel, answers.table())
    ax = figure.add_axes(box)
    ax.set_axis_off()
    if not table.rows:
        _no_data(ax, "Không có hàng nào (no rows after the panel's filter)")
        return
    shown = table.rows[:8]
    cells = [[_cell(value) for value in row] for row in shown]
    drawn = ax.table(cellText=cells, colLabels=table.headers, loc="upper center",
                     cellLoc="left", colLoc="left")  # fmt: skip
    drawn.auto_set_font_size(False)
    drawn.set_fontsize(9.5)
    drawn.scale(1, 1.35)
    if len(table.rows) > len(shown):
        ax.text(0.01, 0.02, f"… {len(table.rows) - len(shown)} more rows", fontsize=9,
                transform=ax.transAxes)  # fmt: skip


def _filtered(panel: Panel, table: Table) -> Table:
    """Grafana's filterByValue transformation, for the `greater` matcher the dashboards use."""
    rows = table.rows
    for transformation in panel.get("transformations", []):
        if transformation["id"] != "filterByValue":
            continue
        for rule in transformation["options"]["filters"]:
            if rule["config"]["id"] != "greater":
                continue
            index = table.headers.index(rule["fieldName"])
            limit = rule["config"]["options"]["value"]
            rows = [
                row for row in rows if isinstance(row[index], int | float) and row[index] > limit
            ]
    return Table(table.headers, rows)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return "" if value is None else str(value)


def _draw_unsupported(figure: Figure, panel: Panel, box: Any, answers: _Answers) -> None:
    ax = figure.add_axes(box)
    ax.set_axis_off()
    _no_data(ax, f"panel type {panel['type']} is not drawn")


def _no_data(ax: Axes, text: str = NO_DATA) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=12, color="#888",
            transform=ax.transAxes)  # fmt: skip


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _date(ms: float) -> float:
    """matplotlib's date number (days since its default epoch, 1970-01-01 UTC)."""
    return ms / MS_PER_DAY


DRAWERS: dict[str, Callable[[Figure, Panel, Any, _Answers], None]] = {
    "timeseries": _draw_timeseries,
    "stat": _draw_stat,
    "bargauge": _draw_bargauge,
    "state-timeline": _draw_state_timeline,
    "table": _draw_table,
}


# ---- files ----------------------------------------------------------------------------------


def picture_name(dashboard: Mapping[str, Any]) -> str:
    """mh-water -> dashboard-water.png"""
    return f"dashboard-{dashboard['uid'].removeprefix('mh-')}.png"


def save_png(figure: Figure, path: Path) -> None:
    """A 256-colour PNG: these pictures have few colours, so it is a third of the size."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, facecolor=figure.get_facecolor())
    buffer.seek(0)
    with Image.open(buffer) as image:
        palette = image.convert("RGB").quantize(colors=PNG_COLOURS)
        palette.save(path, format="PNG", optimize=True)


def render_all(
    dashboards: Sequence[Mapping[str, Any]],
    reader: InfluxReader,
    out_dir: Path,
    spans_s: Mapping[str, int] | None = None,
) -> list[Rendered]:
    """One PNG per dashboard in `out_dir`; `spans_s` overrides a dashboard's range by uid."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for dashboard in dashboards:
        picture = render_dashboard(dashboard, reader, (spans_s or {}).get(dashboard["uid"]))
        path = out_dir / picture_name(dashboard)
        save_png(picture.figure, path)
        written.append(Rendered(path, picture.empty_panels))
    return written
