"""The reasons catalog (gateway/reasons.py) lists every reason slug the code gives."""

from __future__ import annotations

import re
from pathlib import Path

from gateway.reasons import WHAT_TO_DO, DeadLetterReason, DropReason, reasons_table

ROOT = Path(__file__).resolve().parent.parent

# Where a slug is given: raised, dropped, or named by a module constant.
_PATTERNS = [
    re.compile(r'DecodeError\(\s*"([a-z_]+)"'),
    re.compile(r'field_drop\(\w+, "([a-z_]+)"\)'),  # the field rule (stages/field_rules.py)
    re.compile(r'drops\.append\(\(\w+, "([a-z_]+)"\)\)'),
    re.compile(r"\('\((?:reading|time)\)', '([a-z_]+)'\)"),
    re.compile(r'^[A-Z_]+ = "([a-z_]+)"$', re.MULTILINE),
    re.compile(r'dead_letters\["([a-z_]+)"\]'),
    re.compile(r'^\s+"(spool_expired|rejected_by_influx)",?$', re.MULTILINE),
]
# Constants that are not reasons.
_NOT_REASONS = {"time_replaced", "mh_gateway_", "gateway_health", "gateway_counters",
                "retained_at_receive_time", "empty_frame", "__", "__gateway_decode"}  # fmt: skip


def slugs_in_code() -> set[str]:
    found: set[str] = set()
    for path in (ROOT / "gateway").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        for pattern in _PATTERNS:
            found.update(pattern.findall(text))
    return found - _NOT_REASONS


def test_every_reason_in_the_code_is_in_the_catalog() -> None:
    catalog = {*DeadLetterReason, *DropReason}
    assert sorted(slugs_in_code() - catalog) == []


def test_every_reason_says_what_to_do() -> None:
    catalog = {*DeadLetterReason, *DropReason}
    assert sorted(catalog - WHAT_TO_DO.keys()) == []
    assert sorted(WHAT_TO_DO.keys() - catalog) == []


def test_the_scan_finds_reasons() -> None:
    """The scan itself: the common reasons are found where the code gives them."""
    assert {"invalid_json", "wrong_type", "unknown_device", "no_layout", "codec_error"} <= (
        slugs_in_code()
    )


def test_the_table_has_a_row_per_reason() -> None:
    table = reasons_table()
    assert table.count("\n| dead letter |") == len(DeadLetterReason)
    assert table.count("\n| dropped |") == len(DropReason)
