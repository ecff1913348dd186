"""The reasons table in docs/operations.md is generated from gateway/reasons.py and must stay in
sync with it: a new dead-letter or drop reason that is not in the docs fails here."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from gateway.cli import app
from gateway.errors import ConfigError
from gateway.operations.generated_docs import REASONS, write_reasons
from gateway.reasons import DeadLetterReason, DropReason, reasons_table

ROOT = Path(__file__).resolve().parent.parent
OPERATIONS = ROOT / "docs" / "operations.md"


def test_the_committed_reasons_table_matches_the_reasons() -> None:
    text = OPERATIONS.read_text(encoding="utf-8")
    assert REASONS.replace(text, reasons_table(), str(OPERATIONS)) == text, (
        "docs/operations.md's reasons table is stale: run `gateway reasons --doc "
        "docs/operations.md` and commit the result"
    )


def test_every_reason_is_in_the_page() -> None:
    page = OPERATIONS.read_text(encoding="utf-8")
    for reason in [*DeadLetterReason, *DropReason]:
        assert f"| `{reason}` |" in page, reason


def test_the_command_writes_only_between_the_markers(tmp_path: Path) -> None:
    page = tmp_path / "operations.md"
    generated = f"{REASONS.begin}\nan old table\n{REASONS.end}"
    page.write_text(f"# Ops\n\nprose\n\n{generated}\n\nmore prose\n")
    answer = CliRunner().invoke(app, ["reasons", "--doc", str(page)])
    assert answer.exit_code == 0, answer.output
    assert answer.output == f"wrote: {page}\n"
    text = page.read_text(encoding="utf-8")
    assert text.startswith("# Ops\n\nprose\n\n")
    assert text.endswith(f"{REASONS.end}\n\nmore prose\n")
    assert "an old table" not in text
    assert "| dead letter | `unknown_device` |" in text
    assert write_reasons(page) is False  # unchanged the second time


def test_a_page_without_markers_is_refused(tmp_path: Path) -> None:
    page = tmp_path / "operations.md"
    page.write_text("# Ops\n")
    with pytest.raises(ConfigError, match=r"operations.md: no .* markers"):
        write_reasons(page)
