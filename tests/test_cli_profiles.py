"""`gateway profiles test / add / validate` as a technician runs them: output and exit codes.

Exit codes: 0 ok, 1 a validation problem (a profile, a failing golden case, a dead letter),
2 a usage or configuration problem. Commands run through `gateway.cli.main`, the console entry
point, so user errors are checked as they are printed (one line, no traceback).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from gateway.cli import main

ROOT = Path(__file__).resolve().parent.parent
PROFILES = ROOT / "device_profiles"
EXAMPLE = ROOT / "docs" / "examples" / "soil-moisture"
SOIL = EXAMPLE / "soil-moisture-json.yaml"
SOIL_TOPIC = "city/environment/phung-chi-kien/sm-0007/soil"
WATER_TOPIC = "city/water/nhan-hoa/wm-0007/telemetry"
WATER = (
    '{"time": "2026-11-24T08:00:00.123+07:00", "flow": {"value": "12.5"}, "pressure_kpa": 300.0, '
    '"totalizer_m3": 12345.678, "battery_pct": 87, "firmware": "1.2"}'
)


class Gateway:
    """Runs the console entry point in-process and keeps what it printed."""

    def __init__(self, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):
        self._capsys = capsys
        self._monkeypatch = monkeypatch
        self.out = self.err = ""

    def __call__(self, *args: str | Path) -> int:
        self._monkeypatch.setattr(sys, "argv", ["gateway", *map(str, args)])
        self._monkeypatch.setenv("COLUMNS", "200")  # usage errors: one line, not a wrapped box
        with pytest.raises(SystemExit) as exited:
            main()
        captured = self._capsys.readouterr()
        self.out, self.err = captured.out, captured.err
        code = exited.value.code
        return code if isinstance(code, int) else 0


@pytest.fixture
def gateway(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Gateway:
    monkeypatch.chdir(ROOT)  # --dir defaults to device_profiles, as in the README
    return Gateway(capsys, monkeypatch)


@pytest.fixture
def profiles_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "profiles"
    shutil.copytree(PROFILES, directory)
    return directory


# --- profiles test ---------------------------------------------------------------------------


def test_test_finds_the_profile_by_topic_and_prints_table_lines_and_drops(
    gateway: Gateway,
) -> None:
    assert gateway("profiles", "test", "--topic", WATER_TOPIC, "--payload", WATER) == 0
    assert gateway.out.splitlines() == [
        "profile mh-water-flow-json v1 (device_profiles/water/flow-meter-json.yaml)",
        "measurement  time (UTC)                tags                                 fields",
        "water_flow   2026-11-24T01:00:00.123Z  device_id=wm-0007 district=nhan-hoa  "
        "pressure_bar=3.0 total_m3=12345.678 battery_pct=87",
        "",
        "line protocol:",
        "water_flow,device_id=wm-0007,district=nhan-hoa "
        "pressure_bar=3.0,total_m3=12345.678,battery_pct=87i 1795482000123000000",
        "",
        "dropped:",
        "  flow_m3h: wrong_type",
    ]


def test_test_tries_a_profile_file_before_it_is_installed(gateway: Gateway) -> None:
    payload = f"@{EXAMPLE / 'payload.json'}"
    assert gateway("profiles", "test", SOIL, "--topic", SOIL_TOPIC, "--payload", payload) == 0
    assert "moisture_pct=34.3 soil_temp_c=24.6 conductivity_us_cm=1280.0" in gateway.out
    assert "dropped: nothing" in gateway.out


def test_test_judges_the_device_clock_against_the_receive_time(gateway: Gateway) -> None:
    payload = WATER.replace("2026-11-24T08:00:00.123+07:00", "1970-01-01T00:00:00Z")
    args = ["--topic", WATER_TOPIC, "--payload", payload, "--received", "2026-11-24T01:00:05Z"]
    assert gateway("profiles", "test", *args) == 0
    assert "2026-11-24T01:00:05Z" in gateway.out
    assert "battery_pct=87 time_replaced=true" in gateway.out
    assert "  (time): clock_past" in gateway.out


def test_test_of_a_message_that_would_be_dead_lettered_exits_1(gateway: Gateway) -> None:
    assert gateway("profiles", "test", "--topic", WATER_TOPIC, "--payload", "{not json") == 1
    assert "dead letter: invalid_json" in gateway.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--topic", WATER_TOPIC], "give --topic and --payload, or --golden FILE"),
        (["nope", "--topic", "t", "--payload", "1"], "error: no profile 'nope' in device_profiles"),
        (["--topic", "city/unknown", "--payload", "1"], "error: topic 'city/unknown' matches no"),
        (
            ["mh-streetlight-json", "--topic", WATER_TOPIC, "--payload", "1"],
            "does not match profile 'mh-streetlight-json' (pattern 'city/lighting/",
        ),
        (["--topic", WATER_TOPIC, "--payload", "@missing.json"], "error: --payload '@missing"),
        (["--topic", WATER_TOPIC, "--payload", "x", "--received", "noon"], "error: --received"),
    ],
)
def test_test_usage_errors_exit_2_with_one_line(
    gateway: Gateway, args: list[str], message: str
) -> None:
    assert gateway("profiles", "test", *args) == 2
    assert message in gateway.err
    assert "Traceback" not in gateway.err


def test_test_of_a_broken_profile_file_exits_1_naming_file_line_and_field(
    gateway: Gateway,
) -> None:
    broken = ROOT / "tests" / "broken_profiles" / "bad-unit.yaml"
    assert gateway("profiles", "test", broken, "--topic", "t", "--payload", "1") == 1
    assert f"{broken}:20: fields.soil_temp_c.unit: unknown unit" in gateway.err


# --- golden vectors --------------------------------------------------------------------------


def test_golden_file_of_a_shipped_profile_passes(gateway: Gateway) -> None:
    golden = ROOT / "tests" / "golden" / "mh-water-flow-json.json"
    assert gateway("profiles", "test", "--golden", golden) == 0
    assert gateway.out.count("ok  ") == 3
    assert gateway.out.endswith("3 passed, 0 failed\n")


def test_golden_example_runs_against_its_profile_file(gateway: Gateway) -> None:
    golden = EXAMPLE / "mh-soil-moisture-json.json"
    assert gateway("profiles", "test", SOIL, "--golden", golden) == 0
    assert "4 passed, 0 failed" in gateway.out


def test_a_failing_golden_case_is_shown_and_exits_1(gateway: Gateway, tmp_path: Path) -> None:
    cases = json.loads((ROOT / "tests/golden/mh-water-flow-json.json").read_text("utf-8"))
    cases[1]["drops"] = []
    cases[2]["dead_letter"] = "invalid_json"
    golden = tmp_path / "mh-water-flow-json.json"
    golden.write_text(json.dumps(cases), encoding="utf-8")
    assert gateway("profiles", "test", "--golden", golden) == 1
    lines = gateway.out.splitlines()
    assert lines[0].startswith("ok  ")
    assert lines[1] == "FAIL  a string where a number belongs drops that field"
    assert lines[2:5] == [
        "      drops differ:",
        "        expected []",
        "        got      [['flow_m3h', 'wrong_type']]",
    ]
    assert "expected dead letter 'invalid_json', got dead letter no_valid_reading" in lines[6]
    assert lines[-1].endswith("1 passed, 2 failed")


def test_a_golden_case_of_another_profile_fails(gateway: Gateway, tmp_path: Path) -> None:
    golden = tmp_path / "mh-streetlight-json.json"
    shutil.copy(ROOT / "tests/golden/mh-water-flow-json.json", golden)
    assert gateway("profiles", "test", "--golden", golden) == 1
    assert "resolves to profile 'mh-water-flow-json', not 'mh-streetlight-json'" in gateway.out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[{", ":1: not valid JSON"),
        ('{"name": "x"}', "a golden file is a JSON list of case objects"),
        (
            '[{"name": "x", "payload": "1", "lines": [], "drops": []}]',
            "case 0 (x): needs a 'topic'",
        ),
        ('[{"name": "x", "topic": "t", "payload": "1"}]', "needs 'lines' and 'drops'"),
    ],
)
def test_a_malformed_golden_file_exits_2(
    gateway: Gateway, tmp_path: Path, content: str, message: str
) -> None:
    golden = tmp_path / "g.json"
    golden.write_text(content, encoding="utf-8")
    assert gateway("profiles", "test", "--golden", golden) == 2
    assert f"error: {golden}" in gateway.err
    assert message in gateway.err


# --- profiles add ----------------------------------------------------------------------------


def test_add_installs_atomically_under_the_domain(gateway: Gateway, profiles_dir: Path) -> None:
    domain = profiles_dir / "environment"
    shipped = {p.name for p in domain.iterdir()} if domain.exists() else set()
    assert gateway("profiles", "add", SOIL, "--dir", profiles_dir) == 0
    target = domain / SOIL.name
    assert target.read_bytes() == SOIL.read_bytes()
    assert target.stat().st_mode & 0o777 == 0o644
    assert {p.name for p in domain.iterdir()} - shipped == {SOIL.name}  # no temp file left
    assert gateway.out.startswith(f"installed: {target} (profile mh-soil-moisture-json v1); ")
    assert gateway("profiles", "validate", profiles_dir) == 0


def test_add_again_replaces_the_same_profile(gateway: Gateway, profiles_dir: Path) -> None:
    assert gateway("profiles", "add", SOIL, "--dir", profiles_dir) == 0
    assert gateway("profiles", "add", SOIL, "--dir", profiles_dir) == 0
    assert gateway.out.startswith("replaced: ")
    installed = profiles_dir / "environment" / SOIL.name
    assert gateway("profiles", "add", installed, "--dir", profiles_dir) == 0
    assert gateway.out.startswith("already in place: ")


def test_add_uses_the_profiles_dir_of_the_config(
    gateway: Gateway, profiles_dir: Path, tmp_path: Path
) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(f'[profiles]\ndir = "{profiles_dir}"\n', encoding="utf-8")
    assert gateway("profiles", "add", SOIL, "--config", config) == 0
    assert (profiles_dir / "environment" / SOIL.name).exists()


def test_add_copies_the_known_device_list_with_the_profile(
    gateway: Gateway, profiles_dir: Path, tmp_path: Path
) -> None:
    source = tmp_path / SOIL.name
    devices = "devices:\n  auto_register: false\n  known_file: soil-stations.txt\n"
    source.write_text(SOIL.read_text(encoding="utf-8") + devices, encoding="utf-8")
    (tmp_path / "soil-stations.txt").write_text("# stations\nsm-0001\n", encoding="utf-8")
    assert gateway("profiles", "add", source, "--dir", profiles_dir) == 0
    installed = profiles_dir / "environment" / "soil-stations.txt"
    assert installed.read_text(encoding="utf-8") == "# stations\nsm-0001\n"
    assert gateway("profiles", "validate", profiles_dir) == 0


def _variant(tmp_path: Path, name: str, *edits: tuple[str, str]) -> Path:
    text = SOIL.read_text(encoding="utf-8")
    for old, new in edits:
        text = text.replace(old, new)
    file = tmp_path / name
    file.write_text(text, encoding="utf-8")
    return file


def test_add_refuses_an_invalid_profile(gateway: Gateway, profiles_dir: Path) -> None:
    broken = ROOT / "tests" / "broken_profiles" / "bad-unit.yaml"
    assert gateway("profiles", "add", broken, "--dir", profiles_dir) == 1
    assert f"{broken}:20: fields.soil_temp_c.unit: unknown unit" in gateway.err
    assert not (profiles_dir / "environment" / broken.name).exists()


def test_add_refuses_overlapping_topics(
    gateway: Gateway, profiles_dir: Path, tmp_path: Path
) -> None:
    new = _variant(
        tmp_path,
        "water-soil.yaml",
        ("id: mh-soil-moisture-json", "id: mh-water-soil"),
        (
            "city/environment/{district}/{device_id}/soil",
            "city/water/{district}/{device_id}/{kind}",
        ),
    )
    assert gateway("profiles", "add", new, "--dir", profiles_dir) == 1
    assert f"{new}:14: match.topic: 'city/water/{{district}}/{{device_id}}/{{kind}}' can match" in (
        gateway.err
    )
    assert "water/flow-meter-json.yaml:10 (profile mh-water-flow-json)" in gateway.err


def test_add_refuses_a_duplicate_id(gateway: Gateway, profiles_dir: Path, tmp_path: Path) -> None:
    new = _variant(
        tmp_path,
        "another-name.yaml",
        ("id: mh-soil-moisture-json", "id: mh-water-flow-json"),
    )
    assert gateway("profiles", "add", new, "--dir", profiles_dir) == 1
    assert f"{new}:7: id: 'mh-water-flow-json' is already used by {profiles_dir}/water/" in (
        gateway.err
    )


def test_add_overwrites_another_profile_only_with_replace(
    gateway: Gateway, profiles_dir: Path, tmp_path: Path
) -> None:
    assert gateway("profiles", "add", SOIL, "--dir", profiles_dir) == 0
    other = tmp_path / "other"
    other.mkdir()
    new = _variant(other, SOIL.name, ("id: mh-soil-moisture-json", "id: mh-soil-v2"))
    assert gateway("profiles", "add", new, "--dir", profiles_dir) == 1
    assert "already holds profile 'mh-soil-moisture-json', not 'mh-soil-v2'" in gateway.err
    assert "--replace" in gateway.err
    assert gateway("profiles", "add", new, "--dir", profiles_dir, "--replace") == 0
    assert "id: mh-soil-v2" in (profiles_dir / "environment" / SOIL.name).read_text("utf-8")


def test_add_refuses_a_file_already_elsewhere_in_the_directory(
    gateway: Gateway, profiles_dir: Path
) -> None:
    stray = profiles_dir / SOIL.name
    shutil.copy(SOIL, stray)
    assert gateway("profiles", "add", stray, "--dir", profiles_dir) == 1
    assert f"move it to {profiles_dir / 'environment' / SOIL.name}" in gateway.err


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--dir", "no/such/dir"], 2, "error: no/such/dir: profiles directory does not exist"),
        (["--config", "no/such.toml"], 2, "error: no/such.toml: configuration file not found"),
    ],
)
def test_add_configuration_errors_exit_2(
    gateway: Gateway, args: list[str], code: int, message: str
) -> None:
    assert gateway("profiles", "add", SOIL, *args) == code
    assert message in gateway.err


def test_add_refuses_a_file_the_loader_would_ignore(gateway: Gateway, profiles_dir: Path) -> None:
    payload = EXAMPLE / "payload.json"
    assert gateway("profiles", "add", payload, "--dir", profiles_dir) == 1
    assert f"{payload}: profile file names end in .yaml or .yml" in gateway.err


# --- validate --------------------------------------------------------------------------------


def test_validate_warns_about_a_per_message_tag(gateway: Gateway, tmp_path: Path) -> None:
    new = _variant(
        tmp_path,
        "soil.yaml",
        (
            "  device_id: {topic: device_id}\n",
            "  device_id: {topic: device_id}\n  seq: {path: seq}\n",
        ),
    )
    assert gateway("profiles", "validate", new) == 0
    assert gateway.err.startswith(f"warning: {new}:25: tags.seq: tag 'seq' reads 'seq'")
    assert gateway.out == "1 profiles ok\n"


def test_validate_the_broken_folder_exits_1(gateway: Gateway) -> None:
    assert gateway("profiles", "validate", ROOT / "tests" / "broken_profiles") == 1
    assert len(gateway.err.splitlines()) >= 29


def test_validate_with_a_config_checks_tenants(gateway: Gateway, tmp_path: Path) -> None:
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / SOIL.name).write_text(
        SOIL.read_text(encoding="utf-8") + "tenant: water\n", encoding="utf-8"
    )
    config = tmp_path / "gateway.toml"
    config.write_text('[tenants.water]\ndatabases = ["water_db"]\n', encoding="utf-8")
    assert gateway("profiles", "validate", profiles) == 0  # no configuration: no tenants
    assert gateway("profiles", "validate", profiles, "--config", config) == 1
    assert "is not a destination of tenant 'water' (allowed: water_db)" in gateway.err
