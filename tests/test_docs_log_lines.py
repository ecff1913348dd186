"""Every line the troubleshooting tables quote is one the code can print.

An operator searches the docs for the line in front of them; a quote the code no longer prints
(reworded, or never written) sends them nowhere. The tables' first column quotes lines in
backticks, with UPPER-CASE placeholders (`FILE`, `HOST:PORT`, `N`), numbers and `...` for the
variable parts. The code's lines are its string literals (log formats, f-strings, exception
messages), with `%s`/`{...}` for theirs. A quote matches when most of its text is the text of
such templates: a placeholder of the quote stands for any text, a variable part of a template
for one word of the quote (an example value), and a template's variable part may hold another
template (a log line around an exception around its cause). `...` splits a quote into parts
checked alone.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TABLES = [ROOT / "docs" / "operations.md", ROOT / "README.md"]
ANY = "\0"  # a variable part, in a quote or a template
_MAX_TEMPLATE = 400

_QUOTE_PLACEHOLDER = re.compile(
    r"\b[A-Z][A-Z0-9_]*(?::[A-Z]+)?\b"  # FILE, HOST:PORT, N, REASON, NOT_AUTHORIZED
    r"|\b\d+(?:\.\d+)?s?\b"  # 5.0s, 401, 64
    r"|\bNs\b|\[\.\.\.\]"
)
_TEMPLATE_PLACEHOLDER = re.compile(r"%[-+ #0]*\d*(?:\.\d+)?[sdfrix]|\{[^{}]*\}")
_MIN_WORD = 4  # a quote needs a word this long outside its placeholders to be checked
_MAX_PIECES = 4  # messages inside messages: a log line, an error, its cause
_MIN_SHARE = 0.6  # of a quote's text, outside its placeholders, that the template must hold


def quoted_lines(page: Path) -> list[str]:
    """The backticked texts of the first column of the page's `| you see |` tables."""
    quotes: list[str] = []
    in_table = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("| you see |"):
            in_table = True
            continue
        if not line.startswith("|"):
            in_table = False
        elif in_table and not line.startswith("|---"):
            first_cell = re.split(r"(?<!\\)\|", line)[1]
            quotes.extend(re.findall(r"`([^`]+)`", first_cell))
    return quotes


def _code_templates() -> list[str]:
    """Every string literal of the gateway package, its variable parts as ANY; not the long
    ones, which are docstrings rather than lines the gateway prints."""
    templates: list[str] = []
    for path in sorted((ROOT / "gateway").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.JoinedStr):
                templates.append(
                    "".join(
                        part.value
                        if isinstance(part, ast.Constant) and isinstance(part.value, str)
                        else ANY
                        for part in node.values
                    )
                )
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                templates.append(_TEMPLATE_PLACEHOLDER.sub(ANY, node.value))
    return [template for template in templates if len(template) <= _MAX_TEMPLATE]


TEMPLATES = _code_templates()
# Strings tried for a quote: those with one of its rarer words, and short ones with a
# variable part that share any of its words (`write failed: %s` around another message).
_WRAPPER = 60
_RARE = 25  # a word in at most this many templates picks the candidates


class _Spread(dict[str, int]):
    """word -> how many templates hold it, counted when first asked."""

    def __missing__(self, word: str) -> int:
        self[word] = sum(word in template for template in TEMPLATES)
        return self[word]


_SPREAD = _Spread()


def _segments(quote: str) -> list[str]:
    """The parts of a quote between its `...`, placeholders as ANY. A leading `error: ` is
    how `gateway` prints any error that stops it (gateway/cli.py, main)."""
    parts = re.split(r"\s*\.\.\.\s*", quote.removeprefix("error: "))
    return [_QUOTE_PLACEHOLDER.sub(ANY, part.strip()) for part in parts if part.strip()]


def _words(segment: str) -> list[str]:
    return [word for word in re.split(r"[\0\s]+", segment) if len(word) >= _MIN_WORD]


def _stretch_matches(segment: str, template: str, *, open_end: bool) -> list[tuple[int, int]]:
    """For each i, the most literal characters of segment[i:] that match the template's own
    text, reading segment[i:] as a stretch of what the template prints (-1: it cannot be);
    as (stretch starting anywhere, stretch starting at the template's start or right after
    one of its variable parts). Without `open_end` the stretch must end at the template's end
    or right before a variable part: where another message fills it.
    A placeholder of the quote stands for any text of the template; a variable part of the
    template for one word of the quote (an example value such as `invalid_json`), never for
    several: those must be another message inside it (see `literal_share`)."""
    n, m = len(segment), len(template)
    impossible = -1
    best = [[0] * (m + 1) for _ in range(n + 1)]  # best[i][j]: segment[i:] from template[j:]
    if not open_end:
        best[n] = [0 if j == m or template[j] == ANY else impossible for j in range(m + 1)]
    for i in range(n - 1, -1, -1):
        best[i][m] = best[i + 1][m] if segment[i] == ANY else impossible
        for j in range(m - 1, -1, -1):
            if segment[i] == ANY:
                found = max(best[i + 1][j], best[i][j + 1])
            elif template[j] == ANY:
                found = max(best[i + 1][j] if segment[i] != " " else impossible, best[i][j + 1])
            elif segment[i] == template[j] and best[i + 1][j + 1] != impossible:
                found = best[i + 1][j + 1] + (segment[i] != " ")
            else:
                found = impossible
            best[i][j] = found
    seams = [j for j in range(m + 1) if j == 0 or template[j - 1] == ANY]
    return [(max(row), max(row[j] for j in seams)) for row in best]


def literal_share(segment: str, templates: list[str]) -> float:
    """The largest share of the segment's literal text (placeholders and spaces aside) that
    the templates' own text prints, the segment read as up to MAX_PIECES stretches of
    templates that meet where one template has a variable part: a printed line is often one
    message inside another (`write failed: ` + `InfluxDB unreachable: ...`). A quote that
    only fits a `%s` says nothing about the code, hence a share and not a yes or no."""
    literal = sum(char not in (ANY, " ") for char in segment)
    if not literal:
        return 0.0
    whole = max(_stretch_matches(segment, t, open_end=True)[0][0] for t in [*templates, ""])
    if whole >= _MIN_SHARE * literal:
        return whole / literal  # one template prints it: no need to look for several
    n = len(segment)
    ends = [k for k in range(1, n + 1) if k == n or not (segment[k - 1] + segment[k]).isalnum()]
    impossible = -1
    # cover[p][k]: most matches for segment[:k] as p stretches; piece[k1] for segment[k1:k]
    cover = [[impossible] * (n + 1) for _ in range(_MAX_PIECES + 1)]
    cover[0][0] = 0
    for k in ends:
        piece = [impossible] * (k + 1)  # piece[start]: segment[start:k] as one stretch
        for template in templates:
            found = _stretch_matches(segment[:k], template, open_end=k == n)
            for start, (anywhere, at_seam) in enumerate(found):
                piece[start] = max(piece[start], anywhere if start == 0 else at_seam)
        for pieces in range(1, _MAX_PIECES + 1):
            cover[pieces][k] = max(
                (cover[pieces - 1][start] + piece[start] for start in range(k)
                 if min(cover[pieces - 1][start], piece[start]) >= 0),
                default=impossible,
            )  # fmt: skip
    best = max(cover[pieces][n] for pieces in range(1, _MAX_PIECES + 1))
    return max(best, whole, 0) / literal


def _printed_somewhere(segment: str) -> bool:
    """Whether the gateway's strings print most of the segment's text. Only strings with one
    of the segment's rarer words are tried: the search is quadratic."""
    words = _words(segment)
    rare = [word for word in words if _SPREAD[word] <= _RARE] or words
    candidates = [
        template
        for template in TEMPLATES
        if any(word in template for word in rare)
        or (len(template) <= _WRAPPER and ANY in template and any(w in template for w in words))
    ]
    return literal_share(segment, candidates) >= _MIN_SHARE


QUOTES = [(page.name, quote) for page in TABLES for quote in quoted_lines(page)]


def test_the_tables_are_found() -> None:
    assert len([q for page, q in QUOTES if page == "operations.md"]) >= 20
    assert len([q for page, q in QUOTES if page == "README.md"]) >= 3


@pytest.mark.parametrize(("page", "quote"), QUOTES)
def test_a_quoted_line_is_printed_by_the_code(page: str, quote: str) -> None:
    checked = [segment for segment in _segments(quote) if _words(segment)]
    missing = [segment.replace(ANY, "…") for segment in checked if not _printed_somewhere(segment)]
    assert not missing, f"{page} quotes `{quote}`, but no string in gateway/ prints {missing}"


def test_a_line_the_code_does_not_print_is_caught() -> None:
    assert _printed_somewhere(_segments("spool full (N of M bytes): not acknowledging")[0])
    for reworded in (
        "spool overflowing (N of M bytes)",
        "spooled batch of N points expired into dead letters",  # what the docs said
        "InfluxDB refused our credentials, retrying",
        "profiles were not reloaded",
    ):
        assert not _printed_somewhere(_segments(reworded)[0]), reworded
