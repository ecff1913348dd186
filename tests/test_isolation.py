"""Data isolation, in process: tenants, personal-data fields and unknown devices.

A RecordingSink stands in for InfluxDB and a QueueIngest for MQTT;
tests/test_isolation_end_to_end.py runs the same rules against the real servers.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from pathlib import Path
from typing import Any

import orjson
import pytest

from gateway.config import GatewaySettings, load_settings
from gateway.errors import ConfigError, ProfileError
from gateway.model import Message
from gateway.pipeline import Gateway
from gateway.policies.tenants import profile_policy
from gateway.profiles.policy import OFFLINE_HASH_KEY, OFFLINE_POLICY
from gateway.profiles.registry import ProfileRegistry, load_directory, load_text
from gateway.stages.deadletter import DeadLetterStore
from gateway.stages.sinks.recording import RecordingSink
from tests.fakes import QueueIngest, let_the_profile_watcher_start, run_and_drain
from tests.waits import wait_for_async

ROOT = Path(__file__).resolve().parent.parent
ANPR = ROOT / "device_profiles" / "traffic" / "anpr-camera-json.yaml"
ANPR_TOPIC = "city/traffic/bach-sam/anpr-0003/plates"
PLATE = "29A-123.45"
HASH_KEY = "k3y-for-tests-only-0123456789abcdef"

# A profile whose topic has a segment called `database` and whose payload carries `database`,
# `db`, `bucket` and `rp` keys: none of them may steer where the readings go.
METER = """\
id: test-meter
version: 1
domain: water
match:
  topic: t/{database}/{device_id}/up
decode:
  format: json
time:
  source: receive
output:
  measurement: meter
  database: water_db
tags:
  device_id: {topic: device_id}
  site: {path: database}
fields:
  level_m: {path: level, type: float}
"""


def write_profile(directory: Path, text: str, name: str = "meter.yaml") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text(text, encoding="utf-8")
    return directory


def settings(tmp_path: Path, profiles: Path, **sections: Any) -> GatewaySettings:
    return GatewaySettings.model_validate(
        {
            "batch": {"max_points": 1000, "max_age_s": 0.05},
            "spool": {"dir": str(tmp_path / "state")},
            "profiles": {"dir": str(profiles), "reload_interval_s": 0.05},
            **sections,
        }
    )


def gateway_for(config: GatewaySettings, registry: ProfileRegistry) -> Gateway:
    store = DeadLetterStore(config.spool.dir / "dl.sqlite3")
    return Gateway(config, registry, sink=RecordingSink(), dead_letters=store, ingest=QueueIngest())


def sink_of(instance: Gateway) -> RecordingSink:
    assert isinstance(instance.sink, RecordingSink)
    return instance.sink


# ---- tenants --------------------------------------------------------------------------------

WATER_TENANT = {"water": {"databases": ["water_db"]}, "traffic": {"databases": ["traffic_db"]}}


def test_a_profile_writes_only_to_its_tenants_databases(tmp_path: Path) -> None:
    profiles = write_profile(tmp_path / "p", METER + "tenant: traffic\n")
    policy = profile_policy(settings(tmp_path, profiles, tenants=WATER_TENANT))
    with pytest.raises(ProfileError) as caught:
        load_directory(profiles, policy)
    assert caught.value.problems == [
        f"{profiles / 'meter.yaml'}: output.database: 'water_db' is not a destination of "
        "tenant 'traffic' (allowed: traffic_db)"
    ]
    write_profile(profiles, METER + "tenant: water\n")
    assert [p.tenant for p in load_directory(profiles, policy).profiles] == ["water"]


@pytest.mark.parametrize(
    ("tenants", "tenant_line", "message"),
    [
        (WATER_TENANT, "", "tenant: required when the configuration has [tenants] sections; "
         "name the agency that owns this profile (configured tenants: traffic, water)"),
        ({}, "tenant: water\n", "tenant: 'water' is not configured (configured tenants: none); "
         "add [tenants.water] with its databases to the gateway configuration"),
        ({"water": {"databases": ["telemetry"]}}, "tenant: water\n",
         "output.database: 'water_db' is not a destination of tenant 'water' (allowed: "
         "telemetry)"),
    ],
)  # fmt: skip
def test_tenant_mistakes_are_named(
    tmp_path: Path, tenants: dict[str, object], tenant_line: str, message: str
) -> None:
    profiles = write_profile(tmp_path / "p", METER + tenant_line)
    with pytest.raises(ProfileError) as caught:
        load_directory(profiles, profile_policy(settings(tmp_path, profiles, tenants=tenants)))
    assert caught.value.problems == [f"{profiles / 'meter.yaml'}: {message}"]


def test_the_default_database_counts_as_the_profiles_destination(tmp_path: Path) -> None:
    text = METER.replace("  database: water_db\n", "") + "tenant: water\n"
    profiles = write_profile(tmp_path / "p", text)
    config = settings(tmp_path, profiles, tenants=WATER_TENANT)  # [influx] database telemetry
    with pytest.raises(ProfileError, match=r"output.database \(default\): 'telemetry' is not"):
        load_directory(profiles, profile_policy(config))


def test_without_tenants_every_existing_profile_loads_unchanged() -> None:
    config = GatewaySettings()
    registry = load_directory(ROOT / "device_profiles", profile_policy(config))
    assert len(registry.profiles) == len(load_directory(ROOT / "device_profiles").profiles)


@pytest.mark.parametrize("database", ["{database}", "db_{device_id}", " "])
def test_a_destination_is_a_fixed_name(database: str) -> None:
    text = METER.replace("database: water_db", f"database: {database!r}")
    with pytest.raises(ProfileError, match=r"output.database: a fixed, non-empty name"):
        load_text(text, "meter.yaml")


async def test_neither_topic_nor_payload_can_choose_the_database(tmp_path: Path) -> None:
    profiles = write_profile(tmp_path / "p", METER + "tenant: water\n")
    config = settings(tmp_path, profiles, tenants=WATER_TENANT)
    instance = gateway_for(config, load_directory(profiles, profile_policy(config)))
    hostile = {"level": 1.5, "database": "traffic_db", "db": "traffic_db", "bucket": "x", "rp": "y"}
    for n, segment in enumerate(["traffic_db", "water_db", "_internal", "traffic_db%2F..", "+"]):
        topic = f"t/{segment}/m-{n}/up"
        instance.on_message(Message(topic, orjson.dumps(hostile), 1_000 + n, False, n))
    await run_and_drain(instance)
    writes = sink_of(instance).writes
    assert {(database, rp) for database, rp, _ in writes} == {("water_db", None)}
    assert len(sink_of(instance).lines) == 5


async def test_a_reload_that_breaks_isolation_is_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway")
    profiles = write_profile(tmp_path / "p", METER + "tenant: water\n")
    config = settings(tmp_path, profiles, tenants=WATER_TENANT)
    instance = gateway_for(config, load_directory(profiles, profile_policy(config)))
    stop = asyncio.Event()
    task = asyncio.create_task(instance.run(stop))
    await let_the_profile_watcher_start()
    redirected = METER.replace("database: water_db", "database: traffic_db") + "tenant: water\n"
    write_profile(profiles, redirected + "# a hostile edit\n")
    metrics = instance.metrics
    await wait_for_async(lambda: metrics.profile_reloads_failed > 0, 5, "the reload refused")
    instance.on_message(Message("t/x/m-1/up", b'{"level": 2.0}', 1_000, False, 1))
    stop.set()  # the stop drains: the message is written before run() returns
    await asyncio.wait_for(task, 5)
    assert instance.metrics.profile_reloads_failed == 1
    assert "'traffic_db' is not a destination of tenant 'water' (allowed: water_db)" in caplog.text
    assert [(db, len(lines)) for db, _, lines in sink_of(instance).writes] == [("water_db", 1)]


# ---- personal data --------------------------------------------------------------------------


def hmac_hex(key: bytes, value: str) -> str:
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:16]


def anpr(plate: object = PLATE, **changes: object) -> bytes:
    reading = {"cam": "anpr-0003", "t": 1795482001234, "plate": plate, "lane": 2, "dir": "in"}
    reading |= {"cls": "car", "conf": 0.97, "v_kmh": 43.5, "snapshot": f"https://c/{PLATE}.jpg"}
    return orjson.dumps(reading | changes)


def test_golden_hashes_are_the_hmac_of_the_public_offline_key() -> None:
    registry = load_directory(ANPR.parent, OFFLINE_POLICY)
    profile = registry.get("mh-traffic-anpr-json")
    assert profile is not None
    assert profile.private_paths == ("plate", "snapshot")
    assert "snapshot" not in {field.name for field in profile.fields}
    assert hmac_hex(OFFLINE_HASH_KEY, PLATE) == "9363fd0c98f284b5"  # tests/golden's value


@pytest.mark.parametrize(
    ("field", "message"),
    [
        ("{path: plate, type: float, privacy: hash}", "the field needs type: string"),
        ("{path: plate, type: string, privacy: drop, required: true}", "cannot be required"),
        ("{path: plate, type: string, privacy: secret}", "'keep', 'drop' or 'hash'"),
    ],
)
def test_privacy_mistakes_are_named(field: str, message: str) -> None:
    text = METER.replace("  level_m: {path: level, type: float}", f"  plate: {field}")
    with pytest.raises(ProfileError) as caught:
        load_text(text, "meter.yaml")
    [problem] = caught.value.problems
    assert problem.startswith("meter.yaml:17: fields.plate")
    assert message in problem


async def test_a_plate_is_stored_hashed_with_the_configured_key_and_never_in_clear(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    config = settings(
        tmp_path,
        ANPR.parent,
        privacy={"hash_key": HASH_KEY},
        limits={"max_payload_bytes": 256, "device_rate_per_s": 1, "device_burst": 3},
    )
    instance = gateway_for(config, load_directory(ANPR.parent, profile_policy(config)))
    topic = ANPR_TOPIC
    letters = [
        anpr(),  # stored, hashed
        anpr(t="soon"),  # bad timestamp: dead letter, JSON kept without the private keys
        anpr()[:-1],  # invalid JSON: dead letter, payload withheld
        anpr(pad="x" * 300),  # too large: dead letter before decoding, withheld
        anpr(),  # over the burst of 3 (the oversized one took none): rate_limited
    ]
    for n, payload in enumerate(letters):
        instance.on_message(Message(topic, payload, 1_000 + n, False, n))
    await run_and_drain(instance)

    [line] = sink_of(instance).lines
    assert f'plate_hash="{hmac_hex(HASH_KEY.encode(), PLATE)}"' in line
    store = DeadLetterStore(instance.dead_letters.path)
    stored = store.select(None, None, 0, 100)
    assert sorted(letter.reason for _, letter in stored) == [
        "invalid_json", "no_valid_reading", "payload_too_large", "rate_limited",
    ]  # fmt: skip
    everything = repr(sink_of(instance).writes) + repr(stored) + caplog.text
    assert PLATE not in everything
    assert PLATE.encode().hex() not in everything
    kept = {letter.reason: letter.payload for _, letter in stored}
    assert orjson.loads(kept["no_valid_reading"])["cls"] == "car"  # the rest stays inspectable
    assert "plate" not in orjson.loads(kept["no_valid_reading"])
    assert kept["invalid_json"] == b""


# ---- unknown devices ------------------------------------------------------------------------


KNOWN = "devices:\n  auto_register: false\n  known: [m-1]\n  known_file: meters.txt\n"


async def test_unknown_devices_are_quarantined(tmp_path: Path) -> None:
    profiles = write_profile(tmp_path / "p", METER + KNOWN)
    (profiles / "meters.txt").write_text("# meters installed in 2026\nm-2\n\n  m-3  # spare\n")
    config = settings(tmp_path, profiles)
    instance = gateway_for(config, load_directory(profiles, profile_policy(config)))
    for n, device in enumerate(["m-1", "m-2", "m-3", "m-4", "intruder", "m-1"]):
        payload = orjson.dumps({"level": float(n)})
        instance.on_message(Message(f"t/x/{device}/up", payload, 1_000 + n, False, n))
    await run_and_drain(instance)
    assert [line.split(",")[1].split(" ")[0] for line in sink_of(instance).lines] == [
        "device_id=m-1", "device_id=m-2", "device_id=m-3", "device_id=m-1",
    ]  # fmt: skip
    assert instance.metrics.dead_letters == {"unknown_device": 2}
    stored = DeadLetterStore(instance.dead_letters.path).select(None, None, 0, 10)
    assert [letter.topic for _, letter in stored] == ["t/x/m-4/up", "t/x/intruder/up"]
    assert "'intruder' is not among the profile's known devices" in stored[1][1].detail
    assert instance.rules.series.count("test-meter") == 3  # strangers spent no budget


async def test_an_edited_known_devices_file_is_reloaded(tmp_path: Path) -> None:
    profiles = write_profile(tmp_path / "p", METER + KNOWN)
    known_file = profiles / "meters.txt"
    known_file.write_text("m-2\n")
    config = settings(tmp_path, profiles)
    instance = gateway_for(config, load_directory(profiles, profile_policy(config)))
    stop = asyncio.Event()
    task = asyncio.create_task(instance.run(stop))
    await let_the_profile_watcher_start()
    instance.on_message(Message("t/x/m-5/up", b'{"level": 1}', 1_000, False, 1))
    known_file.write_text("m-2\nm-5\n")
    await wait_for_async(lambda: instance.metrics.profile_reloads > 0, 5, "the list reloaded")
    instance.on_message(Message("t/x/m-5/up", b'{"level": 2}', 2_000, False, 2))
    stop.set()  # the stop drains: the message is written before run() returns
    await asyncio.wait_for(task, 5)
    assert instance.metrics.dead_letters == {"unknown_device": 1}
    assert sink_of(instance).lines == ["meter,device_id=m-5 level_m=2.0 2000"]


@pytest.mark.parametrize(
    ("devices", "message"),
    [
        ("  auto_register: false\n", "auto_register: false needs the known devices"),
        ("  known: [m-1]\n", "known/known_file only apply with auto_register: false"),
        ("  auto_register: false\n  known_file: nowhere.txt\n", "cannot read"),
        ("  auto_register: false\n  known_file: meters.yaml\n", "must end in .txt"),
    ],
)
def test_device_list_mistakes_are_named(tmp_path: Path, devices: str, message: str) -> None:
    with pytest.raises(ProfileError) as caught:
        load_text(METER + "devices:\n" + devices, str(tmp_path / "meter.yaml"))
    [problem] = caught.value.problems
    assert ": devices" in problem
    assert message in problem


def test_existing_profiles_keep_accepting_any_device() -> None:
    registry = load_directory(ROOT / "device_profiles")
    assert {p.known_devices for p in registry.profiles} == {None}


def test_a_short_hash_key_is_refused_without_echoing_it(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text('[privacy]\nhash_key = "sesame-1"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert "privacy.hash_key: Value error, at least 16 bytes" in str(caught.value)
    assert "sesame-1" not in str(caught.value)
