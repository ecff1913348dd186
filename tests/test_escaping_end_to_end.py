"""Hostile text in tags and string fields, through mosquitto, the gateway and InfluxDB 1.x.

Every value a device controls (a topic segment that becomes a tag, a payload value that becomes
a tag, a string field) is sent with the characters line protocol gives a meaning to, plus
quotes, backslashes, line breaks, control characters and Unicode. Each must read back exactly
as sent via /query, or be refused with a reason; and no value may create an extra point, field,
tag or measurement.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.harness import GatewayProcess, gateway_config
from tests.servers import Influxd, Mosquitto
from tests.waits import wait_for

pytestmark = pytest.mark.integration

PROFILE = """\
id: test-escaping
version: 1
domain: environment
match:
  topic: esc/{device_id}/up
decode:
  format: json
time:
  path: t
  format: epoch_ns
output:
  measurement: esc_probe
tags:
  device_id: {topic: device_id}
  label: {path: label}
fields:
  n: {path: n, type: int}
  note: {path: note, type: string}
"""

HOSTILE = [
    "a,b", "a b", "a=b", 'a"b', "a\\b", "a\\ b", "x\\,y", "a\\\"b", "=", ",", " ", '"',
    "sp ", " lead", "t\tab", "nul\x00x", "esc\x1b[31m", "\x7f", "\u2028ls", "ü漢🚦",
    'v",evil=1i', "x n=9i 1\nesc_probe,device_id=evil n=1i 2", 'z" 123\nextra n=1i',
    "cr\rx", "multi\nline",
]  # fmt: skip
# Refused as tags, with the reason invalid_tag: InfluxDB 1.x cannot store a line break in a
# tag, and reads a final backslash as escaping the separator (the whole line is refused).
REFUSED_AS_TAG = {"x n=9i 1\nesc_probe,device_id=evil n=1i 2", 'z" 123\nextra n=1i', "cr\rx",
                  "multi\nline", "trail\\", "\\"}  # fmt: skip
DEVICES = ["plain", "d,1=x y", 'q"uote', "ü-漢"]  # topic segments become the device_id tag


def messages() -> list[tuple[str, dict[str, Any]]]:
    values = [*HOSTILE, "trail\\", "\\"]
    base = time.time_ns() - 10**12
    sent = []
    for n, value in enumerate(values):
        device = DEVICES[n % len(DEVICES)]
        sent.append((device, {"t": base + n, "n": n, "label": value, "note": value}))
    return sent


def test_hostile_text_reads_back_exactly_or_is_refused(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, influx_db: str
) -> None:
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "escaping.yaml").write_text(PROFILE, encoding="utf-8")
    config = gateway_config(
        tmp_path / "gateway.toml", mosquitto, influxd, influx_db,
        overrides={"profiles": {"dir": str(profiles)}, "log": {"level": "DEBUG"},
                   "monitoring": {"enabled": False}},
    )  # fmt: skip
    sent = messages()
    with GatewayProcess(config) as gateway:
        for device, payload in sent:
            subprocess.run(
                ["mosquitto_pub", "-p", str(mosquitto.port), "-q", "1",
                 "-t", f"esc/{device}/up", "-m", json.dumps(payload)],
                check=True, timeout=30,
            )  # fmt: skip
        # A message is acknowledged once InfluxDB took its point: then all of them are there,
        # with anything extra the gateway might wrongly have made of them.
        wait_for(
            lambda: gateway.metric("messages_acked_total") == len(sent), 30, "all acknowledged"
        )
        rows = stored_rows(influxd, influx_db)
        assert gateway.stop() == 0
        log = gateway.log()

    by_n = {row["n"]: row for row in rows}
    assert sorted(by_n) == list(range(len(sent)))  # one point per message, none extra
    for device, payload in sent:
        row = by_n[payload["n"]]
        assert row["note"] == payload["note"], payload
        assert row["device_id"] == device
        if payload["label"] in REFUSED_AS_TAG:
            assert row["label"] is None, payload
        else:
            assert row["label"] == payload["label"], payload
    assert log.count("'label', 'invalid_tag'") == len(REFUSED_AS_TAG)

    def only(query: str, column: int = 0) -> list[str]:
        answer = influxd.query(query, db=influx_db)
        return sorted(str(v[column]) for s in answer["results"][0]["series"] for v in s["values"])

    assert only("SHOW MEASUREMENTS") == ["esc_probe"]
    assert only("SHOW FIELD KEYS") == ["n", "note"]
    assert only("SHOW TAG KEYS") == ["device_id", "label"]
    assert only('SHOW TAG VALUES WITH KEY = "device_id"', 1) == sorted(DEVICES)


def stored_rows(influxd: Influxd, database: str) -> list[dict[str, Any]]:
    answer = influxd.query("SELECT * FROM esc_probe", db=database)
    [series] = answer["results"][0]["series"]
    return [dict(zip(series["columns"], values, strict=True)) for values in series["values"]]
