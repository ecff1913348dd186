"""What the InfluxDB writer does differently for VictoriaMetrics (`[influx] engine =
"victoriametrics"`), so that what VictoriaMetrics loses is reported instead of silent.

VictoriaMetrics takes line protocol but stores numbers only, and answers 204 before it parses
the body. Observed against the Debian package (1.79.5), the engine of the tests:

- A string field is stored as the number 0 (`m,d=a v=1.5,s="hello"` gives `m_s{d="a"} 0`;
  later versions skip it). So the writer sends no string field: each is left out of its line
  and counted as a dropped field (`string_unsupported`); a line left without fields is not
  sent. Pure text work on the batch's lines, done only for this engine.
- An unparsable line is logged (`cannot unmarshal InfluxDB line "...": ...; skipping it`),
  dropped and counted in `vm_rows_invalid_total{type="influx"}` on its /metrics, and the write
  still answered 204: the gateway cannot dead-letter it. The writer reads that counter every
  monitoring interval and reports its increase (`InvalidRows`).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Final

log = logging.getLogger(__name__)

INVALID_ROWS_METRIC: Final = 'vm_rows_invalid_total{type="influx"}'
_START_METRIC: Final = "process_start_time_seconds"  # a new value: VictoriaMetrics restarted
_MAX_WARNED_FIELDS = 1024  # (measurement, field) pairs named in a warning once each


@dataclass(frozen=True, slots=True)
class Stripped:
    """A batch without its string fields: the lines to send, where each came from in the
    batch (None when every line was kept), and the (measurement, field) of each dropped field."""

    lines: list[str]
    origin: list[int] | None
    dropped: list[tuple[str, str]]


@dataclass(slots=True)
class NumbersOnly:
    """Leaves string fields out of lines; warns once per measurement and field."""

    _warned: set[tuple[str, str]] = field(default_factory=set)

    def strip(self, lines: list[str]) -> Stripped:
        # A string field's value is quoted, so a line without a double quote has none (a
        # quote in a tag value only costs this line a parse).
        if not any('"' in line for line in lines):
            return Stripped(lines, None, [])
        kept: list[str] = []
        origin: list[int] = []
        dropped: list[tuple[str, str]] = []
        for index, line in enumerate(lines):
            numbers = _without_strings(line, dropped) if '"' in line else line
            if numbers:
                kept.append(numbers)
                origin.append(index)
        return Stripped(kept, origin if len(kept) < len(lines) else None, dropped)

    def warn(self, dropped: list[tuple[str, str]]) -> None:
        """Name each measurement and field the first time its strings are left out."""
        new = sorted(set(dropped) - self._warned)
        if not new or len(self._warned) >= _MAX_WARNED_FIELDS:
            return
        self._warned.update(new)
        names = ", ".join(f"{measurement}.{name}" for measurement, name in new)
        log.warning(
            "VictoriaMetrics stores numbers only: string field(s) %s left out of the lines "
            "written (counted in fields_dropped, reason string_unsupported); keep string "
            "readings in InfluxDB or map them to numbers in the profile",
            names,
        )


# A line as the gateway writes it (lineprotocol.encode_point, the normalizers): the series
# (measurement and tags, with `,`, `=` and space escaped by a backslash), a space, the fields,
# a space, the time. Field keys escape the same three; a string value is quoted, with `"` and
# `\` escaped inside. Read with regular expressions rather than decode_line + encode_point,
# which walk the line a character at a time in Python: ~5 against ~50 us a plate camera line
# (5,000-line batches, interleaved on a busy box; tests check both read lines alike).
# (`[^x\\]*(?:\\.[^x\\]*)*`: text up to an unescaped x, unrolled so it does not backtrack.)
_SERIES = re.compile(r"[^ \\]*(?:\\.[^ \\]*)*")
_MEASUREMENT = re.compile(r"[^,\\]*(?:\\.[^,\\]*)*")
_FIELD = re.compile(r'([^,=\\]*(?:\\.[^,=\\]*)*)=("[^"\\]*(?:\\.[^"\\]*)*"|[^,"]*)(?:,|\Z)')
_ESCAPED = re.compile(r"\\([,= ])")


def _without_strings(line: str, dropped: list[tuple[str, str]]) -> str:
    """The line without its string fields (added to `dropped`), or "" when no field is left."""
    series = _prefix(_SERIES, line)
    end = line.rfind(" ")
    fields = line[len(series) + 1 : end]
    numbers: list[str] = []
    strings: list[str] = []
    at = 0
    while at < len(fields):
        found = _FIELD.match(fields, at)
        if found is None:
            return line  # not a line of ours: if VictoriaMetrics cannot parse it, InvalidRows tells
        key, value = found.groups()
        if value.startswith('"'):
            strings.append(_ESCAPED.sub(r"\1", key))
        else:
            numbers.append(f"{key}={value}")
        at = found.end()
    if not strings:
        return line  # the quote was in a tag value
    measurement = _ESCAPED.sub(r"\1", _prefix(_MEASUREMENT, series))
    dropped += [(measurement, name) for name in strings]
    return f"{series} {','.join(numbers)}{line[end:]}" if numbers else ""


def _prefix(pattern: re.Pattern[str], text: str) -> str:
    found = pattern.match(text)
    return found.group() if found else ""


@dataclass(slots=True)
class InvalidRows:
    """The increase of VictoriaMetrics' invalid-row counter between two readings of /metrics.

    The first reading is the baseline (what was counted before the gateway ran is not its
    concern). A restart of VictoriaMetrics, told by a new process start time or by a smaller
    counter, starts its counter from 0: everything counted since is an increase."""

    _total: int | None = None
    _started: float | None = None

    @property
    def watching(self) -> bool:
        """Whether the counter was read once: the baseline is known."""
        return self._total is not None

    def increase(self, metrics_text: str) -> int | None:
        """Rows VictoriaMetrics found invalid since the last call; None when the text lacks
        the counter (not VictoriaMetrics, or a version that names it otherwise)."""
        values = _values(metrics_text, (INVALID_ROWS_METRIC, _START_METRIC))
        total = values.get(INVALID_ROWS_METRIC)
        if total is None:
            return None
        started = values.get(_START_METRIC)
        previous, previous_start = self._total, self._started
        self._total, self._started = int(total), started
        if previous is None:
            return 0
        restarted = started != previous_start or total < previous
        return int(total) if restarted else int(total) - previous


def _values(text: str, names: tuple[str, ...]) -> dict[str, float]:
    """The named samples of a Prometheus text exposition (`name{labels} value`)."""
    found: dict[str, float] = {}
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name in names:
            try:
                found[name] = float(value)
            except ValueError:
                continue
    return found
