"""The whole chain into VictoriaMetrics: simulators -> mosquitto -> gateway -> victoria-metrics.

VictoriaMetrics takes InfluxDB line protocol on /write and /api/v2/write and stores each
numeric field as its own series: `measurement,tags field=v t` becomes metric
`measurement_field{tags, db="..."}` at t cut to milliseconds. String fields are not stored as
strings (VictoriaMetrics 1.79, the Debian package, stores a 0; later versions skip them), so
the gateway runs with `[influx] engine = "victoriametrics"`: it leaves them out and counts each
(fields_dropped, reason string_unsupported). The truth comparison covers every numeric and
boolean field (booleans as 1/0); every string field of the truth must be counted as dropped,
once, and stored as nothing.

VictoriaMetrics also keeps a sample written twice as two samples (no deduplication unless
started with -dedup.minScrapeInterval), so "doubled" here is strict: a replayed batch that had
in fact been stored would show.
"""

from __future__ import annotations

import contextlib
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.harness import (
    GatewayProcess,
    gateway_config,
    load_truth,
    run_simulators,
    simulators_running,
)
from tests.servers import Mosquitto, VictoriaMetrics
from tests.waits import wait_for

pytestmark = pytest.mark.integration

SampleKey = tuple[str, tuple[tuple[str, str], ...], int]  # metric, labels, time in ms
EVENT_TIMEOUT_S = 60.0


def config_for(
    tmp_path: Path, broker: Mosquitto, engine: VictoriaMetrics, api: str, **spool: float
) -> Path:
    influx: dict[str, str | float] = {
        "url": engine.url,
        "api": api,
        "engine": "victoriametrics",
        "timeout_s": 1.0,
    }
    if api == "v2":
        influx |= {"org": "town", "bucket": "town", "token": "unused-by-victoria-metrics"}
    return gateway_config(
        tmp_path / "gateway.toml",
        broker,
        engine,  # type: ignore[arg-type]  # gateway_config reads .url only, overridden here
        "town",
        overrides={"influx": influx, "spool": {"write_timeout_s": 1.0, **spool}},
    )


def expected_samples(truth: list[dict[str, Any]]) -> set[SampleKey]:
    """What VictoriaMetrics must hold for the truth: every number and boolean field."""
    expected: set[SampleKey] = set()
    for row in truth:
        labels = tuple(sorted(row["tags"].items()))
        for field, value in row["fields"].items():
            if not isinstance(value, str):
                expected.add((f"{row['measurement']}_{field}", labels, row["time_ns"] // 10**6))
    return expected


def string_fields(truth: list[dict[str, Any]]) -> tuple[set[str], int]:
    """The metrics VictoriaMetrics would make of the truth's string fields, and how many
    string values the truth holds."""
    names = {
        f"{row['measurement']}_{field}"
        for row in truth
        for field, value in row["fields"].items()
        if isinstance(value, str)
    }
    count = sum(isinstance(value, str) for row in truth for value in row["fields"].values())
    return names, count


def assert_strings_dropped(
    engine: VictoriaMetrics, gateway: GatewayProcess, truth: list[dict[str, Any]]
) -> None:
    """Each string value of the truth counted as dropped once, and none stored as a 0."""
    names, count = string_fields(truth)
    assert count > 0, "the simulated town sends string fields (e.g. the camera's plate hash)"
    assert gateway.metric("fields_dropped_total", reason="string_unsupported") == count
    assert sum(stored_samples(engine, names).values()) == 0


def stored_samples(engine: VictoriaMetrics, metrics: set[str]) -> Counter[SampleKey]:
    """Samples of the given metrics, counted: a key seen twice was stored twice."""
    selector = '{__name__=~"' + "|".join(sorted(metrics)) + '"}'
    stored: Counter[SampleKey] = Counter()
    for series in engine.export(selector):
        labels = dict(series["metric"])
        name = labels.pop("__name__")
        labels.pop("db", None)  # VictoriaMetrics' label for the v1 `db` / v2 `bucket` argument
        key = tuple(sorted(labels.items()))
        for timestamp in series["timestamps"]:
            stored[(name, key, timestamp)] += 1
    return stored


def compare(
    engine: VictoriaMetrics, truth: list[dict[str, Any]], timeout_s: float
) -> tuple[int, int, int]:
    """(expected samples, lost, doubled) once VictoriaMetrics holds as many as expected or the
    deadline passed."""
    expected = expected_samples(truth)
    metrics = {key[0] for key in expected}
    stored: Counter[SampleKey] = Counter()

    def caught_up() -> bool:
        nonlocal stored
        stored = stored_samples(engine, metrics)
        return sum(stored.values()) >= len(expected)

    with contextlib.suppress(AssertionError):  # what never came is reported as lost
        wait_for(caught_up, timeout_s, f"{len(expected)} samples in VictoriaMetrics")
    lost = len(expected - set(stored))
    doubled = sum(count - 1 for count in stored.values()) + len(set(stored) - expected)
    total = sum(stored.values())
    print(
        f"victoria-metrics: expected={len(expected)} stored={total} lost={lost} doubled={doubled}"
    )
    return len(expected), lost, doubled


@pytest.mark.parametrize("api", ["v1", "v2"])
def test_a_simulated_town_is_stored_exactly(
    tmp_path: Path, mosquitto: Mosquitto, victoria_metrics: VictoriaMetrics, api: str
) -> None:
    config = config_for(tmp_path, mosquitto, victoria_metrics, api)
    truth_file = tmp_path / "truth.jsonl"
    with GatewayProcess(config) as gateway:
        run_simulators(
            mosquitto, truth_file,
            "--lighting", "20", "--water", "20", "--traffic", "20", "--anpr-cameras", "10",
            "--messages", "3000", "--rate", "0", "--seed", "7",
        )  # fmt: skip
        truth = load_truth(truth_file)
        expected, lost, doubled = compare(victoria_metrics, truth, EVENT_TIMEOUT_S)
        assert_strings_dropped(victoria_metrics, gateway, truth)
        assert gateway.stop() == 0
    assert expected > 3000
    assert (lost, doubled) == (0, 0)
    assert "Traceback" not in gateway.log()


def test_a_restart_of_victoria_metrics_mid_stream_spools_and_replays(
    tmp_path: Path, mosquitto: Mosquitto, victoria_metrics: VictoriaMetrics
) -> None:
    config = config_for(tmp_path, mosquitto, victoria_metrics, "v1")
    truth_file = tmp_path / "truth.jsonl"
    with GatewayProcess(config) as gateway:
        with simulators_running(
            mosquitto, truth_file,
            "--lighting", "30", "--water", "30", "--traffic", "30", "--anpr-cameras", "10",
            "--messages", "200000", "--rate", "1000", "--seed", "23",
        ) as publisher:  # fmt: skip

            def acked() -> float:
                return gateway.metric("messages_acked_total")

            wait_for(lambda: acked() >= 1000, EVENT_TIMEOUT_S, "the stream flows")
            victoria_metrics.stop()
            gateway.wait_for_log("spooling batches to disk", timeout_s=EVENT_TIMEOUT_S)
            wait_for(
                lambda: gateway.metric("spool_points") >= 3000,
                EVENT_TIMEOUT_S,
                "3,000 readings in the spool",
            )
            victoria_metrics.start()
            gateway.wait_for_log("InfluxDB accepts writes again", timeout_s=EVENT_TIMEOUT_S)
            target = acked() + 1000
            wait_for(lambda: acked() >= target, EVENT_TIMEOUT_S, "the stream flows again")
            assert publisher.poll() is None, "the stream ended before VictoriaMetrics was back"
            publisher.send_signal(signal.SIGTERM)  # the simulators finish their truth file
            assert publisher.wait(timeout=120) == 0
        truth = load_truth(truth_file)
        wait_for(lambda: gateway.metric("spool_points") == 0, 120, "the spool replayed")
        expected, lost, doubled = compare(victoria_metrics, truth, 120)
        assert_strings_dropped(victoria_metrics, gateway, truth)  # spooled ones counted once
        assert gateway.stop() == 0
    assert expected > 3000
    assert (lost, doubled) == (0, 0)
    assert "Traceback" not in gateway.log()
