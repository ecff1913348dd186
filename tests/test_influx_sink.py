"""The InfluxDB writer: v1 against the real influxd, v2 and error classes against a recording
HTTP server (InfluxDB 1.6, the Debian package, predates /api/v2/write)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from gateway.config import InfluxSettings
from gateway.errors import SinkError
from gateway.stages.sinks.influx import InfluxSink, classify
from tests.servers import Influxd


@pytest.mark.integration
async def test_v1_write_creates_the_database_and_lands(influxd: Influxd) -> None:
    database = "sink_v1_autocreate"
    sink = InfluxSink(InfluxSettings(url=influxd.url, database=database))
    try:
        await sink.write(
            ["m,device_id=a v=1.5 1000000000", "m,device_id=b v=2.0 2000000000"], None, None
        )
    finally:
        await sink.close()
    try:
        rows = influxd.points(database, "m")
        assert sorted((row["device_id"], row["v"]) for row in rows) == [("a", 1.5), ("b", 2.0)]
    finally:
        influxd.drop_database(database)


@pytest.mark.integration
async def test_v1_bad_line_is_not_retryable(influxd: Influxd, influx_db: str) -> None:
    sink = InfluxSink(InfluxSettings(url=influxd.url, database=influx_db))
    await sink.write(["m v=1i 1"], None, None)
    with pytest.raises(SinkError) as raised:
        await sink.write(["m v=1.5 2"], None, None)  # field type conflict: int then float
    await sink.close()
    assert raised.value.status == 400
    assert not raised.value.retryable


@dataclass
class Recorder:
    requests: list[tuple[str, dict[str, str], str, bytes]] = field(default_factory=list)
    answers: list[web.Response] = field(default_factory=list)


@pytest.fixture
async def recorder(unused_tcp_port: int) -> AsyncIterator[tuple[Recorder, str]]:
    recorder = Recorder()

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        recorder.requests.append(
            (request.path, dict(request.query), request.headers.get("Authorization", ""), body)
        )
        return recorder.answers.pop(0) if recorder.answers else web.Response(status=204)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", unused_tcp_port)
    await site.start()
    yield recorder, f"http://127.0.0.1:{unused_tcp_port}"
    await runner.cleanup()


async def test_v2_write_uses_org_bucket_and_token(recorder: tuple[Recorder, str]) -> None:
    server, url = recorder
    settings = InfluxSettings(url=url, api="v2", org="my-hao", bucket="town", token="t0k")
    sink = InfluxSink(settings)
    await sink.write(["m v=1i 1"], None, None)
    await sink.write(["m v=2i 2"], "water-agency", None)
    await sink.close()
    [(path, query, auth, body), (_, query2, _, _)] = server.requests
    assert path == "/api/v2/write"
    assert query == {"org": "my-hao", "bucket": "town", "precision": "ns"}
    assert query2["bucket"] == "water-agency"
    assert auth == "Token t0k"
    assert body == b"m v=1i 1"


async def test_v1_credentials_and_retention_policy(recorder: tuple[Recorder, str]) -> None:
    server, url = recorder
    settings = InfluxSettings(
        url=url, database="db", retention_policy="a_year", username="gw", password="pw"
    )
    sink = InfluxSink(settings)
    await sink.write(["m v=1i 1"], None, None)
    await sink.close()
    [(path, query, auth, _)] = server.requests
    assert (path, query) == ("/write", {"db": "db", "precision": "ns", "rp": "a_year"})
    assert auth == "Basic Z3c6cHc="  # base64("gw:pw")


async def test_service_unavailable_is_retryable_with_retry_after(
    recorder: tuple[Recorder, str],
) -> None:
    server, url = recorder
    server.answers.append(web.Response(status=503, headers={"Retry-After": "7"}, text="{}"))
    sink = InfluxSink(InfluxSettings(url=url))
    with pytest.raises(SinkError) as raised:
        await sink.write(["m v=1i 1"], None, None)
    await sink.close()
    assert raised.value.retryable
    assert raised.value.retry_after_s == 7.0


async def test_unreachable_is_retryable(unused_tcp_port: int) -> None:
    sink = InfluxSink(InfluxSettings(url=f"http://127.0.0.1:{unused_tcp_port}", timeout_s=2))
    with pytest.raises(SinkError) as raised:
        await sink.write(["m v=1i 1"], None, None)
    await sink.close()
    assert raised.value.retryable
    assert "unreachable" in str(raised.value)


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        (204, None),
        (400, False),
        (413, False),
        (422, False),
        (401, True),
        (403, True),
        (429, True),
        (500, True),
        (503, True),
    ],
)
def test_classify(status: int, retryable: bool | None) -> None:
    error = classify(status, '{"error": "x"}', None)
    if retryable is None:
        assert error is None
    else:
        assert error is not None
        assert error.retryable is retryable
