"""`[influx] engine = "victoriametrics"`: what VictoriaMetrics would lose silently is reported.

Against the real VictoriaMetrics of the tests (Debian 1.79): what it does with a string field
and an unparsable line when nothing is done about them (answers 204, stores the string as 0,
drops the line and counts it in vm_rows_invalid_total{type="influx"}); that the writer leaves
string fields out and counts them by reason; and that the gateway turns an increase of the
invalid-row counter into its own metric and a warning. The pure parts (stripping lines, reading
the counter across restarts) and the configuration are tested without a server.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Mapping
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.config import InfluxSettings, load_settings
from gateway.errors import ConfigError, SinkError
from gateway.model import FieldValue, Point
from gateway.operations.counters import Metrics
from gateway.stages.lineprotocol import decode_line, encode_point
from gateway.stages.sinks import RefusedLinesError
from gateway.stages.sinks.influx import InfluxSink
from gateway.stages.sinks.victoria import InvalidRows, NumbersOnly
from tests.harness import GatewayProcess, gateway_config
from tests.scripted_http import Step, answer, scripted_server
from tests.servers import Influxd, Mosquitto, VictoriaMetrics
from tests.test_doctor import doctor, verdicts
from tests.waits import wait_for

T = 1_700_000_000_000_000_000
T_MS = T // 10**6
READING = f'm,d=a v=1.5,s="hello",b=true,n=3i {T}'
ONLY_A_STRING = f'm,d=e s="only a string" {T}'
UNPARSABLE = "this is not line protocol"


def victoria(url: str, **settings: str) -> InfluxSettings:
    return InfluxSettings(url=url, engine="victoriametrics", **settings)


def stored(engine: VictoriaMetrics) -> dict[str, dict[str, float]]:
    """metric -> device tag -> value of everything VictoriaMetrics holds."""
    found: dict[str, dict[str, float]] = {}
    for series in engine.export():
        labels = series["metric"]
        assert series["timestamps"] == [T_MS], series
        found.setdefault(labels["__name__"], {})[labels["d"]] = series["values"][0]
    return found


def invalid_rows(engine: VictoriaMetrics) -> int:
    with urllib.request.urlopen(f"{engine.url}/metrics", timeout=5) as answer:  # noqa: S310  # our own http:// URL
        text = answer.read().decode()
    [line] = [row for row in text.splitlines() if row.startswith("vm_rows_invalid_total")
              and 'type="influx"' in row]  # fmt: skip
    return int(line.rpartition(" ")[2])


def post(engine: VictoriaMetrics, body: str) -> int:
    request = urllib.request.Request(  # noqa: S310  # our own http:// URL
        f"{engine.url}/write?db=town&precision=ns", data=body.encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310  # as above
        return int(answer.status)


# ---- what VictoriaMetrics does without the engine setting (the reason for it) ------------------


@pytest.mark.integration
async def test_victoria_metrics_answers_204_stores_strings_as_0_and_drops_bad_lines(
    victoria_metrics: VictoriaMetrics,
) -> None:
    assert post(victoria_metrics, f"{READING}\n{UNPARSABLE}\n{ONLY_A_STRING}\n") == 204
    wait_for(lambda: invalid_rows(victoria_metrics) == 1, 30, "the bad line counted invalid")
    assert stored(victoria_metrics) == {
        "m_v": {"a": 1.5},
        "m_b": {"a": 1.0},
        "m_n": {"a": 3.0},
        "m_s": {"a": 0.0, "e": 0.0},  # a string reading silently became 0
    }


@pytest.mark.integration
async def test_with_the_default_engine_the_writer_sends_string_fields_as_they_are(
    victoria_metrics: VictoriaMetrics,
) -> None:
    metrics = Metrics()
    sink = InfluxSink(InfluxSettings(url=victoria_metrics.url), metrics)
    try:
        await sink.write([READING], "town", None)
    finally:
        await sink.close()
    assert stored(victoria_metrics)["m_s"] == {"a": 0.0}
    assert metrics.fields_dropped == {}


# ---- engine = "victoriametrics" -----------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("api", ["v1", "v2"])
async def test_string_fields_are_dropped_by_reason_and_the_numbers_stored(
    victoria_metrics: VictoriaMetrics, api: str
) -> None:
    destination = {"org": "town", "bucket": "town"} if api == "v2" else {}
    metrics = Metrics()
    sink = InfluxSink(victoria(victoria_metrics.url, api=api, **destination), metrics)
    try:
        await sink.write([READING, ONLY_A_STRING, f"m,d=c v=2.5 {T}"], "town", None)
    finally:
        await sink.close()
    assert stored(victoria_metrics) == {
        "m_v": {"a": 1.5, "c": 2.5},
        "m_b": {"a": 1.0},
        "m_n": {"a": 3.0},
    }
    assert metrics.fields_dropped == {"string_unsupported": 2}
    assert invalid_rows(victoria_metrics) == 0  # the line left without fields was not sent


async def test_a_refused_write_counts_no_drop_and_keeps_the_batch_for_a_retry() -> None:
    """Drops are counted when the rest was accepted: a batch retried or spooled and replayed
    counts its strings once. Nothing listens on port 9 of this host."""
    metrics = Metrics()
    sink = InfluxSink(victoria("http://127.0.0.1:9", timeout_s="1.0"), metrics)
    lines = [READING]
    try:
        with pytest.raises(SinkError, match="unreachable"):
            await sink.write(lines, "town", None)
    finally:
        await sink.close()
    assert metrics.fields_dropped == {}
    assert lines == [READING]  # the caller's batch is not changed


async def test_refused_lines_are_named_by_their_place_in_the_batch() -> None:
    """A proxy in front of VictoriaMetrics could answer as InfluxDB 1.x does, naming a refused
    line: the index is the line's in the caller's batch, not in the lines sent without the
    string-only ones."""
    bad = f"m,d=x v=1.0,w=2.0 {T}"
    refusal = orjson.dumps({"error": f"partial write: unable to parse '{bad}': bad"})
    lines = [ONLY_A_STRING, READING, bad]
    async with scripted_server(Step(answer(400, "Bad Request", refusal))) as server:
        metrics = Metrics()
        sink = InfluxSink(victoria(server.url), metrics)
        try:
            with pytest.raises(RefusedLinesError) as raised:
                await sink.write(lines, "town", None)
        finally:
            await sink.close()
    assert list(raised.value.refused) == [2]  # the third line of the batch
    assert server.requests[0].body.decode().splitlines()[1] == bad
    assert metrics.fields_dropped == {}  # nothing was accepted yet


@pytest.mark.integration
def test_lines_victoria_metrics_drops_become_a_gateway_metric_and_a_warning(
    tmp_path: Path, mosquitto: Mosquitto, victoria_metrics: VictoriaMetrics
) -> None:
    assert post(victoria_metrics, f"{UNPARSABLE} before\n") == 204  # not the gateway's concern
    wait_for(lambda: invalid_rows(victoria_metrics) == 1, 30, "the first bad line counted")
    config = config_for(tmp_path, mosquitto, victoria_metrics, {"engine": "victoriametrics"})
    with GatewayProcess(config) as gateway:
        gateway.wait_for_log("watching VictoriaMetrics' vm_rows_invalid_total")
        assert post(victoria_metrics, f"{UNPARSABLE}\n{READING}\n{UNPARSABLE} again\n") == 204
        wait_for(
            lambda: gateway.metric("engine_lines_dropped_total") >= 2,
            30,
            "the gateway reports the two lines VictoriaMetrics dropped",
        )
        gateway.wait_for_log("VictoriaMetrics answered 204 but dropped")
        assert gateway.metric("engine_lines_dropped_total") == 2
        assert gateway.stop() == 0
    assert "Traceback" not in gateway.log()


@pytest.mark.integration
def test_without_the_engine_setting_nothing_is_watched(
    tmp_path: Path, mosquitto: Mosquitto, victoria_metrics: VictoriaMetrics
) -> None:
    config = config_for(tmp_path, mosquitto, victoria_metrics, {})
    with GatewayProcess(config) as gateway:
        assert gateway.metric("engine_lines_dropped_total") == 0
        assert gateway.stop() == 0
    assert "watching VictoriaMetrics" not in gateway.log()


def config_for(
    tmp_path: Path, broker: Mosquitto, engine: VictoriaMetrics, influx: Mapping[str, str]
) -> Path:
    return gateway_config(
        tmp_path / "gateway.toml",
        broker,
        engine,  # type: ignore[arg-type]  # gateway_config reads .url only, overridden here
        "town",
        overrides={"influx": {"url": engine.url, **influx}, "monitoring": {"interval_s": 1.0}},
    )


@pytest.mark.integration
@pytest.mark.parametrize(("engine", "warned"), [("influxdb", True), ("victoriametrics", False)])
def test_doctor_asks_for_the_engine_setting_when_victoria_metrics_answers(
    tmp_path: Path,
    mosquitto: Mosquitto,
    victoria_metrics: VictoriaMetrics,
    engine: str,
    warned: bool,
) -> None:
    config = config_for(tmp_path, mosquitto, victoria_metrics, {"engine": engine})
    result = doctor(config)
    warning = verdicts(result).get("influxdb engine")
    assert bool(warning) is warned, result.stdout
    if warning:
        [block] = warning
        assert block.startswith("WARN"), result.stdout
        assert 'fix: set [influx] engine = "victoriametrics"' in block
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.integration
def test_doctor_warns_when_influxdb_answers_a_victoria_metrics_setting(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd
) -> None:
    overrides = {"influx": {"engine": "victoriametrics"}}
    config = gateway_config(tmp_path / "g.toml", mosquitto, influxd, "town", overrides=overrides)
    result = doctor(config)
    [block] = verdicts(result)["influxdb engine"]
    assert block.startswith("WARN  influxdb engine: [influx] engine is 'victoriametrics' but "
                            "InfluxDB 1.x"), result.stdout  # fmt: skip
    assert 'fix: remove [influx] engine (default "influxdb")' in block
    assert "Traceback" not in result.stdout + result.stderr


# ---- pure parts -------------------------------------------------------------------------------


def test_lines_without_strings_go_as_they_are() -> None:
    lines = [f"m,d=a v=1.5 {T}", f"m,d=b n=2i,b=false {T}"]
    stripped = NumbersOnly().strip(lines)
    assert stripped.lines is lines
    assert (stripped.origin, stripped.dropped) == (None, [])


def test_string_fields_are_left_out_and_lines_without_fields_skipped() -> None:
    lines = [ONLY_A_STRING, READING, f'm,d=q\\"uote v=1.0 {T}', f'm,d=f s="a, b=\\"c\\"" {T}']
    stripped = NumbersOnly().strip(lines)
    assert stripped.lines == [f"m,d=a v=1.5,b=true,n=3i {T}", f'm,d=q\\"uote v=1.0 {T}']
    assert stripped.origin == [1, 2]  # where each sent line was in the batch
    assert stripped.dropped == [("m", "s"), ("m", "s"), ("m", "s")]


# Names and tag values with everything line protocol escapes or quotes, but no backslash:
# before `,`, `=` or a space it is ambiguous in line protocol itself (normalize drops such tag
# values). String values may hold anything.
_NAME = st.text(st.sampled_from('ab ,="_.'), min_size=1, max_size=6)
_VALUE = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(-(2**63), 2**63 - 1),
    st.booleans(),
    st.text(st.sampled_from('a ,="\\\n'), max_size=8),
)


@given(
    measurement=_NAME,
    tags=st.lists(st.tuples(_NAME, _NAME), max_size=3),
    fields=st.dictionaries(_NAME, _VALUE, min_size=1, max_size=5),
)
def test_stripping_agrees_with_reading_the_line(
    measurement: str, tags: list[tuple[str, str]], fields: dict[str, FieldValue]
) -> None:
    """The line left is the point without its strings, as decode_line reads it."""
    point = Point(measurement, tuple(tags), fields, T)
    stripped = NumbersOnly().strip([encode_point(point)])
    numbers: dict[str, FieldValue] = {
        name: value for name, value in fields.items() if not isinstance(value, str)
    }
    strings = [name for name, value in fields.items() if isinstance(value, str)]
    assert stripped.dropped == [(measurement, name) for name in strings]
    if not numbers:
        assert stripped.lines == []
        return
    [line] = stripped.lines
    assert decode_line(line) == Point(measurement, tuple(tags), numbers, T)


def test_each_field_is_named_in_a_warning_once(caplog: pytest.LogCaptureFixture) -> None:
    numbers = NumbersOnly()
    numbers.warn([("m", "s"), ("m", "s")])
    numbers.warn([("m", "s"), ("plate", "hash")])
    numbers.warn([("m", "s")])
    warnings = [record.getMessage() for record in caplog.records]
    assert len(warnings) == 2
    assert "m.s left out" in warnings[0]
    assert "plate.hash left out" in warnings[1]


def metrics_page(invalid: int | None, started: int = 1700) -> str:
    rows = [f"process_start_time_seconds {started}", 'vm_rows_invalid_total{type="graphite"} 9']
    if invalid is not None:
        rows.append(f'vm_rows_invalid_total{{type="influx"}} {invalid}')
    return "\n".join(rows) + "\n"


def test_the_invalid_row_counter_is_read_as_increases() -> None:
    rows = InvalidRows()
    assert not rows.watching
    assert rows.increase(metrics_page(5)) == 0  # counted before the gateway looked
    assert rows.watching
    assert rows.increase(metrics_page(5)) == 0
    assert rows.increase(metrics_page(8)) == 3
    assert rows.increase(metrics_page(2, started=1800)) == 2  # restarted: counts from 0
    assert rows.increase(metrics_page(4, started=1800)) == 2
    assert rows.increase(metrics_page(1, started=1800)) == 1  # fewer: a restart too
    assert rows.increase(metrics_page(None)) is None  # not VictoriaMetrics' page


# ---- configuration ----------------------------------------------------------------------------


def write_config(tmp_path: Path, influx: str) -> Path:
    file = tmp_path / "g.toml"
    file.write_text(f"[influx]\n{influx}\n", encoding="utf-8")
    return file


def test_the_engine_is_influxdb_unless_configured(tmp_path: Path) -> None:
    assert load_settings(write_config(tmp_path, "")).influx.engine == "influxdb"
    settings = load_settings(write_config(tmp_path, 'engine = "victoriametrics"\napi = "v2"\n'
                                          'org = "o"\nbucket = "b"'))  # fmt: skip
    assert (settings.influx.engine, settings.influx.api) == ("victoriametrics", "v2")


def test_an_unknown_engine_is_refused_naming_the_valid_ones(tmp_path: Path) -> None:
    file = write_config(tmp_path, 'engine = "victoria"')
    with pytest.raises(ConfigError) as raised:
        load_settings(file)
    assert f"{file}: influx.engine: Input should be 'influxdb' or 'victoriametrics'" in str(
        raised.value
    )


def test_victoria_metrics_with_the_v3_api_is_refused(tmp_path: Path) -> None:
    file = write_config(tmp_path, 'engine = "victoriametrics"\napi = "v3"\ntoken = "t"')
    with pytest.raises(ConfigError, match="VictoriaMetrics has no /api/v3/write_lp"):
        load_settings(file)
