"""What an operator sees, against the real gateway process, mosquitto and influxd.

- `/healthz`, `/readyz` and `/metrics` of a running gateway; `/readyz` turns not-ready while
  InfluxDB is stopped and ready again when it returns. Readiness is documented as "connected
  to the broker AND (InfluxDB takes writes OR the spool can hold them)": with the spool on, an
  InfluxDB outage keeps the gateway ready by design, so this test switches the spool off to see
  InfluxDB's own part of the rule.
- The `/metrics` counters equal the traffic sent, and `gateway status` shows the same figures.
- A device that stops reporting is listed stale after its interval and leaves the list when it
  reports again; a device's MQTT last will (availability topic) lists it offline.

Waits poll with generous deadlines; nothing asserts how fast the gateway is.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gateway.operations.endpoint import parse_metrics
from tests.harness import ROOT, GatewayProcess, gateway_config, wait_for_counts
from tests.servers import Influxd, Mosquitto, find_binary
from tests.waits import wait_for

pytestmark = pytest.mark.integration

DATABASE = "telemetry"
DISTRICT = "di-su"
STATUS_TOPIC = "city/lighting/{district}/{device}/status"


def telemetry_topic(device: str) -> str:
    return f"city/lighting/{DISTRICT}/{device}/telemetry"


def reading(n: int) -> str:
    """A streetlight report (mh-streetlight-json) stamped now, a distinct time for each n."""
    ts_ms = int(time.time() * 1000) + n
    return json.dumps(
        {
            "ts": ts_ms,
            "lamp": {"state": "ON", "dim": 80, "fault": 0},
            "elec": {"p_w": 60.0 + n % 10, "v": 230.0, "i_a": 0.3, "e_kwh": 1.0 + n},
        }
    )


def publish(broker: Mosquitto, topic: str, payloads: list[str], *, retain: bool = False) -> None:
    """QoS 1, one message per line, through the broker's own client."""
    subprocess.run(
        [find_binary("mosquitto_pub"), "-h", broker.host, "-p", str(broker.port), "-q", "1",
         "-t", topic, "-l", *(["-r"] if retain else [])],
        input="\n".join(payloads) + "\n", text=True, check=True, timeout=30,
    )  # fmt: skip


def get(url: str) -> tuple[int, str]:
    assert url.startswith("http://")
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310  # http:// checked
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def health_url(gateway: GatewayProcess) -> str:
    found: list[str] = re.findall(r"health endpoint on (http://\S+)/", gateway.log())
    assert found, gateway.log()
    return found[-1]


def counter(url: str, name: str, **labels: str) -> float:
    """A counter from /metrics, summed over the series that carry `labels`."""
    samples = parse_metrics(get(f"{url}/metrics")[1]).get(f"mh_gateway_{name}_total", [])
    return sum(v for got, v in samples if all(got.get(k) == w for k, w in labels.items()))


def status(url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", "status", "--url", url],
        capture_output=True, text=True, cwd=ROOT, timeout=60, check=False,
    )  # fmt: skip


@pytest.fixture
def gateway_without_spool(
    tmp_path: Path, mosquitto: Mosquitto, private_influxd: Influxd
) -> Iterator[GatewayProcess]:
    private_influxd.create_database(DATABASE)
    config = gateway_config(
        tmp_path / "gateway.toml",
        mosquitto,
        private_influxd,
        DATABASE,
        # No spool: readiness then follows InfluxDB. No self-metrics: every point is a reading.
        overrides={"spool": {"enabled": False}, "monitoring": {"enabled": False}},
    )
    gateway = GatewayProcess(config)
    try:
        yield gateway.start()
    finally:
        gateway.kill()


def test_health_readiness_metrics_and_status_follow_the_real_services(
    gateway_without_spool: GatewayProcess, mosquitto: Mosquitto, private_influxd: Influxd
) -> None:
    gateway = gateway_without_spool
    url = health_url(gateway)
    assert get(f"{url}/healthz") == (200, "ok\n")
    wait_for(lambda: get(f"{url}/readyz")[0] == 200, 60, "ready once connected")

    sent = 25
    publish(mosquitto, telemetry_topic("sl-0001"), [reading(n) for n in range(sent)])
    stored = wait_for_counts(private_influxd, DATABASE, Counter({"streetlight": sent}))
    assert stored == Counter({"streetlight": sent})
    wait_for(lambda: counter(url, "messages_acked") == sent, 60, "all acknowledged")
    assert counter(url, "messages_received") == sent
    assert counter(url, "points_written", domain="lighting") == sent
    assert counter(url, "points_written") == sent  # nothing else was written
    assert counter(url, "dead_letters") == 0

    shown = status(url)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert f"{sent} received, {sent} acknowledged" in shown.stdout
    assert f"{sent} written to InfluxDB" in shown.stdout
    assert shown.stdout.startswith(f"gateway {url}: ready")

    # InfluxDB goes away: the next write fails and, without a spool, the gateway is not ready.
    private_influxd.stop()
    publish(mosquitto, telemetry_topic("sl-0001"), [reading(sent)])
    wait_for(lambda: get(f"{url}/readyz")[0] == 503, 60, "not ready while InfluxDB is down")
    answer = json.loads(get(f"{url}/readyz")[1])
    assert answer["ready"] is False
    assert any(reason.startswith("influxdb: writes failing") for reason in answer["reasons"])
    assert get(f"{url}/healthz") == (200, "ok\n")  # alive: restarting it would not help
    shown = status(url)
    assert shown.returncode == 1
    assert "NOT READY" in shown.stdout
    assert "influxdb: writes failing" in shown.stdout

    # It returns: the held reading is written and the gateway is ready again.
    private_influxd.start()
    wait_for(lambda: get(f"{url}/readyz")[0] == 200, 60, "ready again after InfluxDB returned")
    stored = wait_for_counts(private_influxd, DATABASE, Counter({"streetlight": sent + 1}))
    assert stored == Counter({"streetlight": sent + 1})
    wait_for(lambda: counter(url, "messages_acked") == sent + 1, 60, "the held one acknowledged")
    assert gateway.stop() == 0
    assert "Traceback" not in gateway.log()


class Device:
    """A simulated streetlight: one `mosquitto_pub -l` process fed a reading every period."""

    def __init__(self, broker: Mosquitto, device_id: str) -> None:
        self.device_id = device_id
        self._process = subprocess.Popen(
            [find_binary("mosquitto_pub"), "-h", broker.host, "-p", str(broker.port),
             "-q", "1", "-t", telemetry_topic(device_id), "-l"],
            stdin=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.sent = 0

    def report(self) -> None:
        assert self._process.stdin is not None
        self._process.stdin.write(reading(self.sent) + "\n")
        self._process.stdin.flush()
        self.sent += 1

    def close(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        self._process.wait(timeout=10)


def stale_devices(url: str) -> dict[str, str]:
    """device_id -> reason, from /devices/stale."""
    answer = json.loads(get(f"{url}/devices/stale")[1])
    return {device["device_id"]: device["reason"] for device in answer["devices"]}


def test_a_silent_device_is_stale_after_its_interval_and_back_when_it_resumes(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, influx_db: str
) -> None:
    interval_s = 1.0  # the profile says 60 s; the configuration override makes the test short
    config = gateway_config(
        tmp_path / "gateway.toml",
        mosquitto,
        influxd,
        influx_db,
        extra=f'\n[monitoring.expected_interval_s]\n"mh-streetlight-json" = {interval_s}\n',
    )
    steady, flaky = Device(mosquitto, "sl-0101"), Device(mosquitto, "sl-0102")
    with GatewayProcess(config) as gateway:
        url = health_url(gateway)

        def keep_reporting(devices: list[Device], until: Callable[[], bool], what: str) -> None:
            deadline = time.monotonic() + 60
            while not until():
                assert time.monotonic() < deadline, f"not within 60 s: {what}"
                for device in devices:
                    device.report()
                # The scenario: devices report every interval_s / 4 of real time, as the
                # liveness tracker in the gateway process reads the real clock.
                time.sleep(interval_s / 4)

        keep_reporting([steady, flaky], lambda: counter(url, "messages_acked") >= 8, "reports")
        assert stale_devices(url) == {}
        # The flaky one stops; the steady one goes on. Stale after 3 silent intervals.
        keep_reporting([steady], lambda: "sl-0102" in stale_devices(url), "sl-0102 stale")
        assert stale_devices(url) == {"sl-0102": "silent"}
        answer = json.loads(get(f"{url}/devices/stale")[1])
        assert answer["devices"][0]["expected_interval_s"] == interval_s
        assert answer["devices"][0]["silent_s"] > 3 * interval_s
        assert "sl-0102: silent" in status(url).stdout
        # It resumes: off the list.
        keep_reporting([steady, flaky], lambda: stale_devices(url) == {}, "sl-0102 back")

        # A lamp's last will: the broker publishes `offline` (retained) on its availability
        # topic. A lamp that sends no readings here, so only its availability decides.
        status_topic = STATUS_TOPIC.format(district=DISTRICT, device="sl-0199")
        publish(mosquitto, status_topic, ["offline"], retain=True)
        wait_for(lambda: stale_devices(url).get("sl-0199") == "offline", 60, "sl-0199 offline")
        publish(mosquitto, status_topic, ["online"], retain=True)
        wait_for(lambda: "sl-0199" not in stale_devices(url), 60, "sl-0199 online again")
        assert counter(url, "availability_messages", state="offline") == 1
        assert counter(url, "dead_letters") == 0  # availability is not a reading
        steady.close()
        flaky.close()
        assert gateway.stop() == 0
    assert "Traceback" not in gateway.log()
