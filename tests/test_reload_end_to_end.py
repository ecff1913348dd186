"""Hot reload while the simulators stream at QoS 1: nothing lost, nothing doubled, and a
changed profile's new mapping applies from the reload on."""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from tests.fakes import LEVEL_PROFILE
from tests.harness import (
    PROFILES,
    GatewayProcess,
    compare,
    gateway_config,
    load_truth,
    start_simulators,
    stored_points,
    truth_counts,
    wait_for_counts,
)
from tests.servers import Influxd, Mosquitto
from tests.waits import wait_for

pytestmark = pytest.mark.integration

# What mosquitto logs (`log_type subscribe`) once it has handled the gateway's SUBSCRIBE.
LEVEL_SUBSCRIBED = "test-gateway 1 test/level/+"
NEW_FIELD = "  flow_lps: {path: flow.value, type: float, unit: L/s, min: 0}\n"


def publish(broker: Mosquitto, topic: str, payload: str) -> None:
    subprocess.run(
        ["mosquitto_pub", "-p", str(broker.port), "-q", "1", "-t", topic, "-m", payload],
        check=True,
    )


def test_profiles_change_arrive_and_leave_while_streaming(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, influx_db: str
) -> None:
    profiles = tmp_path / "profiles"
    shutil.copytree(PROFILES, profiles)
    config = gateway_config(
        tmp_path / "gateway.toml", mosquitto, influxd, influx_db,
        overrides={"profiles": {"dir": str(profiles), "reload_interval_s": 0.2}},
    )  # fmt: skip
    truth_file = tmp_path / "truth.jsonl"
    flow_profile = profiles / "water" / "flow-meter-json.yaml"
    level_profile = profiles / "water" / "test-level.yaml"
    with GatewayProcess(config) as gateway:
        publisher = start_simulators(
            mosquitto, truth_file,
            "--lighting", "20", "--water", "20", "--traffic", "0",
            "--messages", "9000", "--rate", "1500", "--seed", "21",
        )  # fmt: skip
        wait_for(lambda: gateway.metric("messages_acked_total") >= 1500, 60, "the stream flows")
        assert publisher.poll() is None, "the stream ended before the reload"
        flow_profile.write_text(flow_profile.read_text() + NEW_FIELD)
        gateway.wait_for_log("profiles reloaded", 1)

        subscribed = mosquitto.log().count(LEVEL_SUBSCRIBED)
        level_profile.write_text(LEVEL_PROFILE)
        gateway.wait_for_log("MQTT subscribed to test/level/+")
        wait_for(  # the broker handles our SUBSCRIBE before mosquitto_pub connects
            lambda: mosquitto.log().count(LEVEL_SUBSCRIBED) > subscribed,
            20,
            f"the broker's log line {LEVEL_SUBSCRIBED!r}",
        )
        for value in ("1.25", "1.5", "1.75"):
            publish(mosquitto, "test/level/tank-1", value)
        # They queue behind the stream: removing the profile before they are handled would
        # (rightly) make them dead letters of an unknown topic.
        assert wait_for_counts(influxd, influx_db, Counter({"tank_level": 3})) == {"tank_level": 3}
        level_profile.unlink()
        gateway.wait_for_log("MQTT unsubscribed from test/level/+")
        assert publisher.poll() is None, "the stream ended before the last reload"
        assert publisher.wait(timeout=120) == 0

        truth = load_truth(truth_file)
        wait_for_counts(influxd, influx_db, truth_counts(truth))
        publish(mosquitto, "test/level/tank-1", "9.0")  # no profile, no subscription: not stored
        # A marker after it, dead-lettered: had the broker still sent test/level/+, 9.0 would
        # have reached the gateway before the marker (and the stop's drain would store it).
        invalid = gateway.metric("dead_letters_total", reason="invalid_json")
        publish(mosquitto, "city/lighting/di-su/sl-0999/telemetry", "not json")
        wait_for(
            lambda: gateway.metric("dead_letters_total", reason="invalid_json") > invalid,
            20,
            "the marker dead-lettered",
        )
        assert gateway.stop() == 0

    # Everything the simulators sent is there exactly once, with the truth's values.
    for row in truth:
        row["fields"].pop("flow_lps", None)
    result = compare(influxd, influx_db, truth)
    assert (result.missing, result.extra) == (0, 0)
    assert [d for d in result.differences if "flow_lps" not in d.split("stored")[1]] == []

    # The new field appears from the reload on, for every flow meter, and never goes away.
    by_device: dict[tuple[object, ...], list[tuple[int, bool]]] = defaultdict(list)
    for (_, tags, time_ns), fields in stored_points(influxd, influx_db, "water_flow").items():
        by_device[tags].append((time_ns, "flow_lps" in fields))
        if "flow_lps" in fields:
            assert fields["flow_lps"] == pytest.approx(fields["flow_m3h"] / 3.6)
    switched = 0
    for readings in by_device.values():
        flags = [has_field for _, has_field in sorted(readings)]
        assert flags == sorted(flags), "a reading after the reload lacks the new field"
        switched += flags[0] is False and flags[-1] is True
    assert switched >= len(by_device) // 2  # most meters reported both before and after

    assert stored_points(influxd, influx_db, "tank_level").__len__() == 3
    log = gateway.log()
    assert "added ['test-level-raw']" in log
    assert "changed ['mh-water-flow-json']" in log
    assert "removed ['test-level-raw']" in log
    assert "Traceback" not in log
