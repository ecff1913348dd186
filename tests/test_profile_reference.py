"""device_profiles/README.md's key reference is generated from the profile schema and must stay
in sync with it (as docs/configuration.md is with the settings, tests/test_config_reference.py)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, get_args

import pytest
from pydantic import BaseModel

from gateway.errors import ConfigError
from gateway.operations.profile_reference import MARKERS, render_profile_reference
from gateway.profiles.schema import ProfileSpec

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "device_profiles" / "README.md"


def test_the_committed_reference_matches_the_profile_schema() -> None:
    text = README.read_text(encoding="utf-8")
    assert MARKERS.replace(text, render_profile_reference(), str(README)) == text, (
        "device_profiles/README.md's key reference is stale: run `gateway profiles reference "
        "--readme device_profiles/README.md` and commit the result"
    )


def _models(annotation: Any) -> list[type[BaseModel]]:
    """Every model a field's type holds, found without the generator's own walk."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in get_args(annotation) for model in _models(arg)]


def test_every_key_of_every_model_is_in_a_table_of_its_own() -> None:
    page = render_profile_reference()
    tables = dict(re.findall(r"^### (.+?)\n(.*?)(?=^### |\Z)", page, re.M | re.S))
    pending: list[type[BaseModel]] = [ProfileSpec]
    seen: set[type[BaseModel]] = set()
    while pending:
        model = pending.pop()
        if model in seen:
            continue
        seen.add(model)
        keys = list(model.model_fields)
        holders = [
            body for body in tables.values() if re.findall(r"^\| `(\w+)` \|", body, re.M) == keys
        ]
        assert holders, f"no table lists exactly the keys of {model.__name__}: {keys}"
        for info in model.model_fields.values():
            pending.extend(_models(info.annotation))
    assert len(tables) == len(seen), "one table per model, each model once"
    # The keys the hand-written table missed (issue 16), and the tagged union's members.
    for title in ("`devices`", "`decode` with `format: csv`", "`decode` with `format: raw`"):
        assert title in tables, title
    assert "| `tenant` | str, optional | none |" in page
    assert "| `privacy` |" in tables["`fields.<name>`"]
    assert "| `version` | int (≥ 1) | required | Bump when the mapping changes. |" in page


def test_every_key_has_a_meaning() -> None:
    rows = re.findall(r"^\| `(\w+)` \|.*\| (.*) \|$", render_profile_reference(), re.M)
    assert rows
    assert [key for key, meaning in rows if not meaning.strip()] == [], (
        "give these keys a Field(description=...) in gateway/profiles/schema.py"
    )


def test_the_generated_part_alone_is_replaced() -> None:
    text = f"intro\n{MARKERS.begin}\nold table\n{MARKERS.end}\noutro\n"
    assert MARKERS.replace(text, "new table\n", "README") == (
        f"intro\n{MARKERS.begin}\n\nnew table\n\n{MARKERS.end}\noutro\n"
    )
    with pytest.raises(ConfigError, match=r"README: no .* markers"):
        MARKERS.replace("no markers here\n", "new table\n", "README")
