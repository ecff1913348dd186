"""Hostile profile files: deeply nested and billion-laughs YAML are refused quickly, naming the
file and line, by `check-config`, `profiles validate` and hot reload (which keeps the previous
profiles and still stops on request). See gateway/profiles/yaml_limits.py."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest

from gateway.model import Message
from gateway.pipeline import Gateway
from tests.fakes import LEVEL_PROFILE, LIGHT_TOPIC, light
from tests.reloading import reloading_gateway

ROOT = Path(__file__).resolve().parent.parent
PROFILES = ROOT / "device_profiles"
# A hang shows as this timeout, not as a stuck test run.
COMMAND_TIMEOUT_S = 60


def deeply_nested(levels: int = 20_000) -> str:
    """Valid YAML that PyYAML's recursive composer cannot walk (RecursionError)."""
    return "id: deep\nmatch:\n  topic: " + "[" * levels + "]" * levels + "\n"


def billion_laughs() -> str:
    """1 KB that expands to 9^9 strings through aliases of aliases."""
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    previous = "a"
    for name in "bcdefghi":
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 9) + "]")
        previous = name
    return "\n".join(lines) + "\n"


HOSTILE = {
    "deep.yaml": (deeply_nested(), "deep.yaml:3: not valid YAML: nested deeper than"),
    "laughs.yaml": (billion_laughs(), "laughs.yaml:6: not valid YAML: expands to more than"),
}


@pytest.fixture
def hostile_profiles(tmp_path: Path) -> Path:
    profiles = tmp_path / "profiles"
    shutil.copytree(PROFILES, profiles)
    for name, (text, _) in HOSTILE.items():
        (profiles / name).write_text(text)
    return profiles


def run_gateway(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=os.environ.copy(),
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )


def assert_refused_by_name(result: subprocess.CompletedProcess[str]) -> None:
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output
    for _, problem in HOSTILE.values():
        assert problem in output, output


def test_profiles_validate_refuses_hostile_files_by_name(hostile_profiles: Path) -> None:
    assert_refused_by_name(run_gateway("profiles", "validate", str(hostile_profiles)))


def test_check_config_refuses_hostile_files_by_name(hostile_profiles: Path, tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(
        f'[profiles]\ndir = "{hostile_profiles}"\n[spool]\ndir = "{tmp_path / "state"}"\n'
    )
    assert_refused_by_name(run_gateway("check-config", "--config", str(config)))


def test_an_oversized_profile_file_is_refused_unread(tmp_path: Path) -> None:
    profiles = tmp_path / "profiles"
    shutil.copytree(PROFILES, profiles)
    (profiles / "huge.yaml").write_text("# " + "x" * 2 * 1024**2 + "\n")
    result = run_gateway("profiles", "validate", str(profiles))
    assert result.returncode != 0
    assert "huge.yaml: cannot read: larger than 1048576 bytes" in result.stdout + result.stderr


async def test_hot_reload_keeps_the_previous_profiles_and_still_stops(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway")
    async with reloading_gateway(tmp_path) as running:  # leaving it stops it; a hang raises
        instance, profiles = running.gateway, running.profiles
        await watcher_is_live(instance, next(profiles.rglob("*.yaml")))
        for failed, (name, (text, _)) in enumerate(HOSTILE.items(), start=1):
            (profiles / name).write_text(text)
            await until(partial(lambda n: instance.metrics.profile_reloads_failed >= n, failed))
            (profiles / name).unlink()
        instance.on_message(Message(LIGHT_TOPIC, light(0), 1_000, False, 1))
        await until(lambda: running.ingest.acked == [1])
    for _, problem in HOSTILE.values():
        assert problem in caplog.text
    assert any("sl-0001" in line for line in running.sink.lines)  # the previous profiles served it


async def until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():  # noqa: ASYNC110  # the gateway bumps counters, it sets no events
            await asyncio.sleep(0.02)


async def watcher_is_live(instance: Gateway, profile: Path) -> None:
    """Touch a profile until a reload succeeds: the watcher has taken its first look."""
    async with asyncio.timeout(10):
        while not instance.metrics.profile_reloads:
            with profile.open("a") as file:
                file.write("# touched\n")
            await asyncio.sleep(0.05)


def test_a_named_pipe_as_a_profiles_device_list_is_refused_not_waited_for(
    tmp_path: Path,
) -> None:
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    devices = "devices:\n  auto_register: false\n  known_file: known.txt\n"
    (profiles / "level.yaml").write_text(LEVEL_PROFILE + devices)
    os.mkfifo(profiles / "known.txt")  # nobody ever writes to it: reading it would block
    result = run_gateway("profiles", "validate", str(profiles))
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "level.yaml:" in output
    assert "devices.known_file: cannot read" in output
    assert "not a regular file" in output
