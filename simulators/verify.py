"""`python -m simulators verify`: does InfluxDB hold exactly what the truth file says?

Every reading of the truth must be stored with its tags, time and fields (floats to 12
significant digits: unit conversions may differ in the last bit), nothing else may be stored
in the simulated measurements, and each field must have the type of its truth value.
Receive-time readings (a device clock the gateway must not trust) match a stored point with
the same tags and fields whose time lies in the reading's window. With --deadletters the
gateway's dead-letter store must hold as many letters per reason as the truth's faults call
for. Exit status 0 only on a perfect match.
"""

from __future__ import annotations

import argparse
import math
import os
import sqlite3
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulators.devices import KINDS
from simulators.influx import InfluxError, InfluxReader, StoredPoint, Tags
from simulators.truth import Expect, TruthDocument, load_truth

EXIT_MATCH, EXIT_MISMATCH, EXIT_ERROR = 0, 1, 2
REL_TOLERANCE = 1e-12
# A receive time is stamped by the gateway after the simulator stamped `sent_ns`, on the same
# or a synchronised clock; this much earlier still counts.
CLOCK_SLACK_NS = 2_000_000_000
_INFLUX_TYPES = {bool: "boolean", int: "integer", float: "float", str: "string"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--truth", type=Path, required=True, metavar="FILE")
    parser.add_argument(
        "--influx", required=True, metavar="URL", help="InfluxDB 1.x, e.g. http://127.0.0.1:8086"
    )
    parser.add_argument("--database", required=True, metavar="DB")
    parser.add_argument("--username")
    parser.add_argument(
        "--password", help="or the environment variable SIM_INFLUX_PASSWORD (kept out of ps)"
    )
    parser.add_argument(
        "--deadletters",
        type=Path,
        metavar="PATH",
        help="the gateway's dead-letter store (deadletter.sqlite3 in its [spool] dir)",
    )
    parser.add_argument(
        "--examples", type=int, default=5, metavar="N", help="examples shown per problem"
    )


@dataclass(slots=True)
class MeasurementCheck:
    expected: int = 0
    stored: int = 0
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    different: list[str] = field(default_factory=list)

    @property
    def perfect(self) -> bool:
        return not (self.missing or self.extra or self.different)


Expected = dict[tuple[Tags, int], dict[str, Any]]


def check_measurement(
    measurement: str, truth: TruthDocument, stored: list[StoredPoint], types: Mapping[str, str]
) -> MeasurementCheck:
    """Compare one measurement's stored points with the truth."""
    expected: Expected = {}
    for reading in truth.readings:
        if reading.measurement == measurement:
            expected[_tags(reading.tags), reading.time_ns] = reading.fields
    at_receive = [
        (_tags(reading.tags), reading.fields, earliest, latest)
        for reading, earliest, latest in truth.receive_time
        if reading.measurement == measurement
    ]
    check = MeasurementCheck(expected=len(expected) + len(at_receive), stored=len(stored))
    unmatched: dict[Tags, list[StoredPoint]] = defaultdict(list)
    for point in stored:
        fields = expected.pop((point.tags, point.time_ns), None)
        if fields is None:
            unmatched[point.tags].append(point)
        elif not fields_equal(fields, point.fields):
            check.different.append(_describe(point, f"truth {fields} stored {point.fields}"))
    check.missing = [_describe(StoredPoint(*key, fields)) for key, fields in expected.items()]
    for tags, fields, earliest, latest in at_receive:
        if _take_receive_time_match(unmatched[tags], fields, earliest, latest) is None:
            where = f"received {earliest}..{latest}"
            check.missing.append(_describe(StoredPoint(tags, 0, fields), where))
    check.extra = [_describe(point) for points in unmatched.values() for point in points]
    check.different += _type_mismatches(measurement, truth, types)
    return check


def _take_receive_time_match(
    candidates: list[StoredPoint], fields: dict[str, Any], earliest: int, latest: int
) -> StoredPoint | None:
    for index, point in enumerate(candidates):
        in_window = earliest - CLOCK_SLACK_NS <= point.time_ns <= latest
        if in_window and fields_equal(fields, point.fields):
            return candidates.pop(index)
    return None


def fields_equal(want: Mapping[str, Any], got: Mapping[str, Any]) -> bool:
    if set(want) != set(got):
        return False
    for name, value in want.items():
        stored = got[name]
        if isinstance(value, bool) or isinstance(stored, bool):
            if value is not stored:
                return False
        elif isinstance(value, float) or isinstance(stored, float):
            if not math.isclose(value, stored, rel_tol=REL_TOLERANCE):
                return False
        elif value != stored:
            return False
    return True


def _type_mismatches(measurement: str, truth: TruthDocument, types: Mapping[str, str]) -> list[str]:
    wanted: dict[str, str] = {}
    readings: Iterable[Any] = [*truth.readings, *(r for r, _, _ in truth.receive_time)]
    for reading in readings:
        if reading.measurement == measurement:
            for name, value in reading.fields.items():
                wanted.setdefault(name, _INFLUX_TYPES[type(value)])
    return [
        f"field {name}: truth {kind}, InfluxDB {types.get(name)}"
        for name, kind in sorted(wanted.items())
        if types.get(name) != kind
    ]


def _tags(tags: Mapping[str, str]) -> Tags:
    return tuple(sorted(tags.items()))


def _describe(point: StoredPoint, note: str = "") -> str:
    tags = ",".join(f"{k}={v}" for k, v in point.tags)
    text = f"{tags} @ {point.time_ns} {point.fields}"
    return f"{text} ({note})" if note else text


def expected_dead_letters(truth: TruthDocument) -> Counter[str]:
    return Counter(
        fault.reason
        for fault in truth.faults
        if fault.expect is Expect.DEAD_LETTER and fault.reason is not None
    )


def stored_dead_letters(path: Path) -> Counter[str]:
    """Letters per reason in the gateway's store, read with sqlite3 (table dead_letters)."""
    if not path.is_file():
        msg = f"--deadletters {path}: no such file (the gateway keeps it in its [spool] dir)"
        raise FileNotFoundError(msg)
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as store:
        rows = store.execute("SELECT reason, COUNT(*) FROM dead_letters GROUP BY reason")
        return Counter({reason: int(count) for reason, count in rows})


def main(args: argparse.Namespace) -> int:
    password = args.password or os.environ.get("SIM_INFLUX_PASSWORD")
    try:
        truth = load_truth(args.truth)
        reader = InfluxReader(args.influx, args.database, args.username, password)
        checks = _check_all(truth, reader)
        letters = stored_dead_letters(args.deadletters) if args.deadletters else None
    except (InfluxError, OSError, sqlite3.Error, ValueError, KeyError) as exc:
        print(f"verify: {exc}", file=sys.stderr)
        return EXIT_ERROR
    expected_letters = expected_dead_letters(truth)
    _print_report(truth, checks, args.examples)
    letters_match = _print_dead_letters(expected_letters, letters)
    perfect = all(check.perfect for check in checks.values()) and letters_match
    print("verify: perfect match" if perfect else "verify: MISMATCH")
    return EXIT_MATCH if perfect else EXIT_MISMATCH


def _check_all(truth: TruthDocument, reader: InfluxReader) -> dict[str, MeasurementCheck]:
    simulated = {kind.measurement for kind in KINDS.values()}
    in_truth = {r.measurement for r in truth.readings}
    in_truth |= {r.measurement for r, _, _ in truth.receive_time}
    present = set(reader.measurements())
    checks = {}
    for measurement in sorted(in_truth | (simulated & present)):
        stored = reader.points(measurement) if measurement in present else []
        types = reader.field_types(measurement) if measurement in present else {}
        checks[measurement] = check_measurement(measurement, truth, stored, types)
    return checks


def _print_report(truth: TruthDocument, checks: dict[str, MeasurementCheck], examples: int) -> None:
    faults = Counter(fault.fault for fault in truth.faults)
    print(
        f"truth: {len(truth.readings)} readings, {len(truth.receive_time)} at receive time, "
        f"{len(truth.faults)} faults ({', '.join(f'{k} {n}' for k, n in sorted(faults.items()))})"
    )
    print(
        f"{'measurement':<20} {'expected':>9} {'stored':>9} {'missing':>8} {'extra':>8} {'diff':>6}"
    )
    for name, check in checks.items():
        print(
            f"{name:<20} {check.expected:>9} {check.stored:>9} {len(check.missing):>8} "
            f"{len(check.extra):>8} {len(check.different):>6}"
        )
    for name, check in checks.items():
        for label, problems in (
            ("missing", check.missing),
            ("extra", check.extra),
            ("different", check.different),
        ):
            for problem in problems[:examples]:
                print(f"  {name} {label}: {problem}")


def _print_dead_letters(expected: Counter[str], stored: Counter[str] | None) -> bool:
    print(f"dead letters expected: {expected.total()} {_reasons(expected)}")
    if stored is None:
        return True
    print(f"dead letters stored:   {stored.total()} {_reasons(stored)}")
    return stored == expected


def _reasons(counts: Counter[str]) -> str:
    return "(" + ", ".join(f"{reason} {n}" for reason, n in sorted(counts.items())) + ")"
