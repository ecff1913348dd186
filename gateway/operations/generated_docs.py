"""Tables in the docs that are generated from the code, between two marker lines.

A page mixes prose written by people with a table the code owns (every profile key, every
dead-letter reason): the generator rewrites only what lies between the page's BEGIN and END
markers, and a test compares the committed page with what the code would write, so a new key
or reason that is not in the docs fails the suite instead of going unnoticed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gateway.errors import ConfigError
from gateway.reasons import reasons_table


@dataclass(frozen=True, slots=True)
class Markers:
    begin: str
    end: str

    def replace(self, text: str, generated: str, where: str) -> str:
        """`text` with everything between the markers replaced by `generated`."""
        start, end = text.find(self.begin), text.find(self.end)
        if start < 0 or end < start:
            raise ConfigError(
                f"{where}: no {self.begin[:30]}... / {self.end} markers, in that order; add "
                "both lines where the generated table belongs"
            )
        return f"{text[: start + len(self.begin)]}\n\n{generated.strip()}\n\n{text[end:]}"

    def write(self, page: Path, generated: str) -> bool:
        """Rewrite the generated part of `page`; True if the file changed."""
        text = page.read_text(encoding="utf-8")
        updated = self.replace(text, generated, str(page))
        if updated == text:
            return False
        page.write_text(updated, encoding="utf-8")
        return True


REASONS = Markers(
    "<!-- BEGIN reasons: generated from gateway/reasons.py by `gateway reasons --doc "
    "docs/operations.md`; do not edit by hand (tests/test_generated_docs.py checks it) -->",
    "<!-- END reasons -->",
)


def write_reasons(page: Path) -> bool:
    """Every dead-letter and drop reason with what to do, into `page` between REASONS."""
    return REASONS.write(page, reasons_table())
