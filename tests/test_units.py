"""Units without pint: the table pint wrote is still what pint says, and the shipped profiles
load without importing pint (~14 MB of RSS for the life of the gateway)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from gateway.profiles.unit_table_source import table_source
from gateway.profiles.units import known_unit, unit_conversion

ROOT = Path(__file__).resolve().parent.parent
TABLE = ROOT / "gateway/profiles/unit_table.py"


def test_the_unit_table_is_what_pint_says_today() -> None:
    assert TABLE.read_text(encoding="utf-8") == table_source(), (
        "gateway/profiles/unit_table.py is stale: "
        ".venv/bin/python -m gateway.profiles.unit_table_source > gateway/profiles/unit_table.py"
    )


def test_the_shipped_profiles_load_without_pint() -> None:
    script = (
        "import sys; from pathlib import Path\n"
        "from gateway.profiles.registry import load_directory\n"
        "registry = load_directory(Path('device_profiles'))\n"
        "assert registry.profiles\n"
        "print('pint' in sys.modules)\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert loaded.stdout.strip() == "False", (
        "a shipped profile uses a unit or conversion missing from "
        "gateway/profiles/unit_table_source.py: add it there and regenerate unit_table.py"
    )


def test_units_outside_the_table_still_go_to_pint() -> None:
    assert unit_conversion("inch", "cm") == (2.54, 0.0)
    known_unit("furlong")
