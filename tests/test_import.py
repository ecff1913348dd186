"""`gateway profiles import` from a device repository laid out as TheThingsNetwork's
lorawan-devices: a fake checkout made here, with tests/codecs' own soil probe codec."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest
import yaml

from gateway.cli import main
from gateway.errors import ConfigError
from gateway.operations.profile_import import import_device
from gateway.profiles.registry import load_file

CODECS = Path(__file__).parent / "codecs"

EXAMPLES: list[dict[str, Any]] = [
    {
        "description": "Normal reading",
        "input": {"fPort": 2, "bytes": [0x08, 0xFC, 0x5A, 0x0B, 0xB8]},
        "output": {
            "data": {"temperature": 23.0, "moisture": 45.0, "battery_mv": 3000},
            "errors": [],
            "warnings": [],
        },
    },
    {
        "description": "Frozen soil, battery low",
        "input": {"fPort": 2, "bytes": [0xFC, 0x18, 0x00, 0x09, 0xC3]},
        "output": {
            "data": {"temperature": -10.0, "moisture": 0, "battery_mv": 2499},
            "warnings": ["battery low"],
        },
    },
    {
        "description": "Status text",
        "input": {"fPort": 3, "bytes": list(b"OK")},
        "output": {"data": {"status": "OK"}},
    },
    {
        "description": "Unknown port",
        "input": {"fPort": 9, "bytes": [0x01]},
        "output": {"errors": ["unknown fPort 9"]},
    },
]


def fake_checkout(root: Path, *, examples: list[dict[str, Any]] = EXAMPLES) -> Path:
    vendor = root / "vendor" / "acme"
    vendor.mkdir(parents=True)
    (vendor / "probe.js").write_text((CODECS / "soil-probe-ts013.js").read_text())
    (vendor / "probe-v2.js").write_text((CODECS / "soil-probe-ts013.js").read_text())
    device = {
        "name": "ACME Soil Probe SP-1",
        "firmwareVersions": [
            {"version": "1.0", "profiles": {"EU863-870": {"codec": "sp1-codec"}}},
            {"version": "2.0", "profiles": {"EU863-870": {"codec": "sp1-v2-codec"}}},
        ],
    }
    (vendor / "sp1.yaml").write_text(yaml.safe_dump(device))
    for codec, script in (("sp1-codec", "probe.js"), ("sp1-v2-codec", "probe-v2.js")):
        decoder = {"uplinkDecoder": {"fileName": script, "examples": examples}}
        (vendor / f"{codec}.yaml").write_text(yaml.safe_dump(decoder))
    return root


@pytest.fixture
def gateway(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., tuple[int, str]]:
    """Runs the console entry point in-process: (exit code, what it printed)."""

    def run(*args: str | Path) -> tuple[int, str]:
        monkeypatch.setattr(sys, "argv", ["gateway", *map(str, args)])
        with pytest.raises(SystemExit) as exited:
            main()
        code = exited.value.code
        return code if isinstance(code, int) else 0, capsys.readouterr().out

    return run


def test_import_writes_a_profile_its_codec_and_golden_vectors_that_pass(
    tmp_path: Path, gateway: Callable[..., tuple[int, str]]
) -> None:
    checkout, out = fake_checkout(tmp_path / "repo"), tmp_path / "out"
    report = import_device(checkout, "acme/sp1", out, firmware="1.0")
    assert report.codec == out / "probe.js"
    assert report.unmapped == []
    profile = load_file(report.profile)
    assert profile.id == "acme-sp1"
    names = [f.name for f in profile.fields]
    assert sorted(names[:4]) == ["battery_mv", "moisture", "status", "temperature"]
    assert names[4:] == ["rssi_dbm", "snr_db"]  # the envelope's radio figures come last
    cases = json.loads(report.golden.read_text())
    assert [case.get("dead_letter") for case in cases] == [None, None, None, "codec_error"]
    (line,) = cases[0]["lines"]
    assert line.startswith("sp1,device_id=sp1-1 ")
    assert line.endswith(" 1795482000000000000")
    fields = dict(pair.split("=") for pair in line.split(" ")[1].split(","))
    assert fields == {
        "temperature": "23.0",
        "moisture": "45.0",
        "battery_mv": "3000i",
        "rssi_dbm": "-97i",
        "snr_db": "7.5",
    }
    code, printed = gateway("profiles", "test", "--dir", out, "--golden", report.golden)
    assert (code, printed.splitlines()[-1]) == (0, f"{report.golden}: 4 passed, 0 failed")


def test_a_codec_that_disagrees_with_the_repository_fails_its_golden_vector(
    tmp_path: Path, gateway: Callable[..., tuple[int, str]]
) -> None:
    wrong = [{**EXAMPLES[0], "output": {"data": {"temperature": 23.5, "moisture": 45.0}}}]
    checkout, out = fake_checkout(tmp_path / "repo", examples=wrong), tmp_path / "out"
    report = import_device(checkout, "acme/sp1", out, firmware="2.0")
    code, printed = gateway("profiles", "test", "--dir", out, "--golden", report.golden)
    assert (code, printed.splitlines()[-1]) == (1, f"{report.golden}: 0 passed, 1 failed")


def test_several_codecs_need_a_firmware_or_region(tmp_path: Path) -> None:
    checkout = fake_checkout(tmp_path / "repo")
    with pytest.raises(ConfigError) as caught:
        import_device(checkout, "acme/sp1", tmp_path / "out")
    assert "several codecs (sp1-codec, sp1-v2-codec)" in str(caught.value)
    assert "--firmware 2.0 --region EU863-870" in str(caught.value)
    with pytest.raises(ConfigError, match=r"no firmware version '3\.0'"):
        import_device(checkout, "acme/sp1", tmp_path / "out", firmware="3.0")
    with pytest.raises(ConfigError, match="no such device"):
        import_device(checkout, "acme/sp9", tmp_path / "out")


def test_what_cannot_be_mapped_is_reported(tmp_path: Path) -> None:
    odd = [
        {
            "input": {"fPort": 2, "bytes": [0x08, 0xFC, 0x5A, 0x0B, 0xB8]},
            "output": {
                "data": {
                    "temperature": {"value": 23.0, "unit": "°C", "displayName": "Temperature"},
                    "history": [1, 2, 3],
                    "mode": 1,
                    "device_id": 7,
                }
            },
        },
        {"input": {"fPort": 2, "bytes": [0x08]}, "output": {"data": {"mode": "eco"}}},
        {"description": "no input", "output": {"data": {}}},
    ]
    checkout = fake_checkout(tmp_path / "repo", examples=cast(list[dict[str, Any]], odd))
    report = import_device(checkout, "acme/sp1", tmp_path / "out", firmware="1.0")
    assert report.unmapped == [
        "data.history: an array (several values per frame): not mapped",
        "data.mode: values of several types (int, string)",
        "example 'no input': input without bytes and fPort; no vector",
    ]
    profile = yaml.safe_load(report.profile.read_text())
    assert profile["fields"]["temperature"] == {
        "path": "payload.temperature.value",
        "type": "float",
        "unit": "degC",
    }
    assert profile["fields"]["device_id_value"] == {"path": "payload.device_id", "type": "int"}
    assert "# not mapped: data.history" in report.profile.read_text()


def test_chirpstack_envelope_import(tmp_path: Path) -> None:
    checkout = fake_checkout(tmp_path / "repo")
    out = tmp_path / "out"
    report = import_device(
        checkout, "acme/sp1", out, region="EU863-870", firmware="1.0", envelope="chirpstack_v4"
    )
    profile = load_file(report.profile)
    assert profile.content is not None
    assert profile.content.path == "deviceInfo.deviceProfileName"
    case = json.loads(report.golden.read_text())[0]
    assert json.loads(case["payload"])["deviceInfo"]["deviceProfileName"] == "sp1"


def test_a_codec_without_examples_still_gets_a_profile_to_complete(tmp_path: Path) -> None:
    checkout = fake_checkout(tmp_path / "repo", examples=[])
    report = import_device(checkout, "acme/sp1", tmp_path / "out", firmware="1.0")
    assert report.unmapped == ["no example gives the codec's data: write fields: by hand"]
    assert [f.name for f in load_file(report.profile).fields] == ["rssi_dbm", "snr_db"]
    assert json.loads(report.golden.read_text()) == []


def test_repository_yaml_is_read_as_yaml_1_2(tmp_path: Path) -> None:
    """`on`, `yes` and `NO` are text in the repository's YAML (its tools read YAML 1.2)."""
    checkout = fake_checkout(tmp_path / "repo")
    (checkout / "vendor" / "acme" / "sp1-codec.yaml").write_text(
        "uplinkDecoder:\n  fileName: probe.js\n  examples:\n"
        "    - input: {fPort: 3, bytes: [0x6F, 0x6E]}\n"
        "      output:\n        data:\n          status: on\n"
    )
    report = import_device(checkout, "acme/sp1", tmp_path / "out", firmware="1.0")
    assert report.examples[0]["output"]["data"] == {"status": "on"}
    profile = yaml.safe_load(report.profile.read_text())
    assert profile["fields"]["status"] == {"path": "payload.status", "type": "string"}
    (case,) = json.loads(report.golden.read_text())
    assert case["lines"][0].startswith('sp1,device_id=sp1-1 status="on",')


def test_the_import_command_prints_what_it_wrote_and_what_it_could_not_map(
    tmp_path: Path, gateway: Callable[..., tuple[int, str]]
) -> None:
    checkout, out = fake_checkout(tmp_path / "repo"), tmp_path / "out"
    code, printed = gateway(
        "profiles", "import", "acme/sp1", "--repo", checkout, "--out", out, "--firmware", "2.0"
    )
    assert code == 0
    assert printed.splitlines() == [
        f"profile: {out}/sp1.yaml",
        f"codec:   {out}/probe-v2.js",
        f"golden:  {out}/acme-sp1.json (4 examples)",
        "not mapped: nothing",
        f"check: gateway profiles test --dir {out} --golden {out}/acme-sp1.json",
    ]
