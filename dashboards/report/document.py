"""The report as one self-contained HTML file (charts as inline SVG) and a CSV per table.

Headings are Vietnamese with the English underneath, as the town's People's Committee reads
it. Charts are drawn with matplotlib (the `pictures` extra) into SVG text embedded in the page,
so the file can be mailed or printed without anything beside it.
"""

from __future__ import annotations

import csv
import html
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib as mpl

mpl.use("Agg")  # no display: the report is written by a command, maybe on a server
import matplotlib.pyplot as plt

from dashboards.report.tables import Cell, Table

_STYLE = """
body { font-family: "Noto Sans", "DejaVu Sans", Arial, sans-serif; margin: 2em auto;
       max-width: 1100px; color: #222; }
h1, h2 { margin-bottom: 0.1em; } h2 { margin-top: 1.6em; border-bottom: 2px solid #1f77b4; }
.en { display: block; font-size: 0.7em; font-weight: normal; color: #666; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: right; }
th { background: #eef3f8; vertical-align: bottom; }
td:first-child, th:first-child { text-align: left; }
th .en { font-size: 0.85em; } .note { color: #555; font-size: 0.85em; }
.empty { color: #888; font-style: italic; }
"""


@dataclass(frozen=True, slots=True)
class Section:
    vi: str
    en: str
    tables: Sequence[Table]
    chart_svg: str = ""


def bar_chart(
    labels: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    *,
    unit: str,
    targets: Mapping[str, float] | None = None,
) -> str:
    """Grouped horizontal bars as SVG text, with optional target lines."""
    height = max(2.5, 0.35 * len(labels) * max(1, len(series)) + 1)
    figure, axes = plt.subplots(figsize=(9, height))
    step = 0.8 / max(1, len(series))
    for index, (name, values) in enumerate(series.items()):
        positions = [i + index * step for i in range(len(labels))]
        axes.barh(positions, [v or 0 for v in values], height=step, label=name)
    for name, value in (targets or {}).items():
        axes.axvline(value, linestyle="--", color="#d62728", linewidth=1)
        axes.annotate(name, (value, len(labels) - 0.4), color="#d62728", fontsize=8)
    axes.set_yticks([i + step * (len(series) - 1) / 2 for i in range(len(labels))], labels)
    axes.invert_yaxis()
    axes.set_xlabel(unit)
    if len(series) > 1:
        axes.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg")
    plt.close(figure)
    svg = buffer.getvalue()
    return svg[svg.index("<svg") :]  # drop the XML prolog: the SVG sits inside HTML


def _cell(value: Cell) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.2f}".rstrip("0").rstrip(".") if value % 1 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return html.escape(value)


def _table_html(table: Table) -> str:
    head = "".join(
        f'<th>{html.escape(c.vi)}<span class="en">{html.escape(c.en)}</span></th>'
        for c in table.columns
    )
    if table.rows:
        body = "".join(
            "<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>" for row in table.rows
        )
    else:
        body = f'<tr><td class="empty" colspan="{len(table.columns)}">không có / none</td></tr>'
    notes = ""
    if table.note_vi or table.note_en:
        notes = (
            f'<p class="note">{html.escape(table.note_vi)}'
            f'<span class="en">{html.escape(table.note_en)}</span></p>'
        )
    return (
        f'<h3>{html.escape(table.vi)}<span class="en">{html.escape(table.en)}</span></h3>'
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{notes}"
    )


def html_document(title: tuple[str, str], period: tuple[str, str], sections: list[Section]) -> str:
    parts = [
        '<!DOCTYPE html><html lang="vi"><head><meta charset="utf-8">',
        f"<title>{html.escape(title[0])}</title><style>{_STYLE}</style></head><body>",
        f'<h1>{html.escape(title[0])}<span class="en">{html.escape(title[1])}</span></h1>',
        f'<p>Kỳ báo cáo: {html.escape(period[0])}<span class="en">Period: '
        f"{html.escape(period[1])}</span></p>",
    ]
    for section in sections:
        parts.append(
            f'<h2>{html.escape(section.vi)}<span class="en">{html.escape(section.en)}</span></h2>'
        )
        if section.chart_svg:
            parts.append(f"<figure>{section.chart_svg}</figure>")
        parts.extend(_table_html(table) for table in section.tables)
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write_csv(table: Table, directory: Path) -> Path:
    """One CSV per table, header "Vietnamese / English"; UTF-8 with a BOM so that a
    spreadsheet opens the Vietnamese correctly."""
    path = directory / f"{table.key}.csv"
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([f"{c.vi} / {c.en}" for c in table.columns])
        writer.writerows(["" if v is None else v for v in row] for row in table.rows)
    return path
