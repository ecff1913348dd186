"""Acceptance of the simulators issue: a faulty town through the real chain, checked by verify.

2,000 simulated devices of every kind, every fault type enabled, through a real mosquitto and
the real gateway process into a real InfluxDB; `python -m simulators verify` must report a
perfect match, the dead-letter store must hold exactly the letters the truth file calls for.

Sizes: the whole suite runs on two slow cores, so the devices send a bounded number of
messages (a few per device, at a day-per-minute speedup); a full simulated day for 2,000
devices is ~1.4 million messages. SIM_ACCEPTANCE_MESSAGES=N runs a longer stream by hand.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from simulators.devices import KINDS
from simulators.faults import FAULTS
from tests.harness import ROOT, GatewayProcess, gateway_config, run_simulators
from tests.servers import Influxd, Mosquitto
from tests.waits import wait_for

pytestmark = pytest.mark.integration

DEVICES = 2000
MESSAGES = int(os.environ.get("SIM_ACCEPTANCE_MESSAGES", "40000"))
# 13 faults at 1.5 % each: about one report in five is faulty, every kind sees every fault.
FAULT_RATES = "all=0.015"
SPEEDUP = 1440  # a simulated day per wall minute
# Deadlines for publishing and for the gateway to take in what was published (generous, and
# longer for a longer stream by hand), not speed expectations.
RECEIVE_DEADLINE_S = max(240.0, MESSAGES / 1000)
PUBLISH_DEADLINE_S = max(300.0, MESSAGES / 500)


def device_counts() -> list[str]:
    share, extra = divmod(DEVICES, len(KINDS))
    arguments = []
    for position, kind in enumerate(KINDS):
        arguments += [f"--{kind}", str(share + (1 if position < extra else 0))]
    return arguments


HASH_KEY = "faulty-town-test-key-not-secret"


def wait_until_received(gateway: GatewayProcess, published: int) -> None:
    wait_for(
        lambda: gateway.metric("messages_received_total") >= published,
        RECEIVE_DEADLINE_S,
        f"the gateway received all {published} published messages",
    )


def test_a_faulty_town_is_stored_exactly_as_the_truth_says(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, influx_db: str
) -> None:
    # The simulators can only predict plate hashes made with a key they know.
    config = gateway_config(
        tmp_path / "gateway.toml", mosquitto, influxd, influx_db,
        overrides={"privacy": {"hash_key": HASH_KEY}},
    )  # fmt: skip
    truth_file, summary_file = tmp_path / "truth.jsonl", tmp_path / "summary.json"
    with GatewayProcess(config) as gateway:
        run_simulators(
            mosquitto, truth_file, *device_counts(),
            "--messages", str(MESSAGES), "--speedup", str(SPEEDUP), "--seed", "4",
            "--faults", FAULT_RATES, "--summary-json", str(summary_file),
            "--privacy-key", HASH_KEY,
            timeout_s=PUBLISH_DEADLINE_S,
        )  # fmt: skip
        summary = json.loads(summary_file.read_text())
        wait_until_received(gateway, summary["messages"])
        assert gateway.stop() == 0
        dead_letters = gateway.state_dir / "deadletter.sqlite3"
    assert set(summary["faults"]) == set(FAULTS)
    verify = subprocess.run(
        [
            sys.executable, "-m", "simulators", "verify", "--truth", str(truth_file),
            "--influx", influxd.url, "--database", influx_db,
            "--deadletters", str(dead_letters),
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=PUBLISH_DEADLINE_S, check=False,
    )  # fmt: skip
    print(verify.stdout, verify.stderr)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "verify: perfect match" in verify.stdout
    expected = sum(summary["dead_letters_expected"].values())
    assert f"dead letters stored:   {expected} " in verify.stdout
    assert "Traceback" not in gateway.log()
