"""Generated normalizer code is readable: tracebacks show its lines, a command prints it."""

from __future__ import annotations

import subprocess
import sys
import traceback
from pathlib import Path

import pytest

from gateway.profiles.registry import load_directory
from gateway.stages.normalize import generated_source, rows_normalizer, source_name

ROOT = Path(__file__).resolve().parent.parent
PROFILES = ROOT / "device_profiles"


def test_a_traceback_through_generated_code_shows_the_line() -> None:
    profile = load_directory(PROFILES).get("mh-water-flow-json")
    assert profile is not None
    normalize = rows_normalizer(profile)
    with pytest.raises(KeyError) as caught:  # no topic segments: the first tag lookup fails
        normalize({"flow": {"value": 1.0}}, {}, 0, [])
    text = "".join(traceback.format_exception(caught.value))
    assert f'File "{source_name(profile)}", line 3, in normalize' in text
    assert "static = (segments['device_id'], segments['district'])" in text


def test_profiles_code_prints_what_runs() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "profiles", "code", "mh-traffic-radar-json",
         "--dir", str(PROFILES)],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    header, _, source = done.stdout.partition("\n")
    assert header.startswith("# <normalize mh-traffic-radar-json>: generated from ")
    profile = load_directory(PROFILES).get("mh-traffic-radar-json")
    assert profile is not None
    assert source == generated_source(profile)
    compile(source, "<printed>", "exec")  # it is the whole function, not an excerpt
