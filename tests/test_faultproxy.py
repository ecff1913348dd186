"""The fault proxy in front of the real influxd: each mode does what the fault tests rely on."""

from __future__ import annotations

import http.client
import urllib.parse

import pytest

from gateway.config import InfluxSettings
from gateway.errors import SinkError
from gateway.stages.sinks.influx import InfluxSink
from tests.faultproxy import FaultProxy, Mode
from tests.servers import Influxd

pytestmark = pytest.mark.integration


def post_write(
    proxy: FaultProxy, database: str, line: str, timeout_s: float = 5.0
) -> tuple[int, http.client.HTTPMessage, bytes]:
    connection = http.client.HTTPConnection(proxy.host, proxy.port, timeout=timeout_s)
    try:
        query = urllib.parse.urlencode({"db": database, "precision": "ns"})
        connection.request("POST", f"/write?{query}", body=line.encode())
        answer = connection.getresponse()
        return answer.status, answer.headers, answer.read()
    finally:
        connection.close()


def test_every_mode_does_what_it_says_and_is_counted(
    fault_proxy: FaultProxy, influxd: Influxd, influx_db: str
) -> None:
    status, _, _ = post_write(fault_proxy, influx_db, "m,device_id=a v=1.5 1000000000")
    assert status == 204
    assert influxd.count(influx_db, "m", "v") == 1

    fault_proxy.error(503, retry_after=2)
    status, headers, body = post_write(fault_proxy, influx_db, "m,device_id=a v=2.5 2000000000")
    assert (status, headers["Retry-After"]) == (503, "2")
    assert b"fault injected" in body

    fault_proxy.hang()
    with pytest.raises(TimeoutError):
        post_write(fault_proxy, influx_db, "m,device_id=a v=3.5 3000000000", timeout_s=0.3)

    fault_proxy.drop()
    with pytest.raises(ConnectionError):
        post_write(fault_proxy, influx_db, "m,device_id=a v=4.5 4000000000")

    fault_proxy.pass_through()
    status, _, _ = post_write(fault_proxy, influx_db, "m,device_id=a v=5.5 5000000000")
    assert status == 204
    assert influxd.count(influx_db, "m", "v") == 2  # nothing of the failed writes landed
    assert fault_proxy.counts == {"pass": 2, "error": 1, "hang": 1, "drop": 1}


def test_stop_releases_a_hung_request(influxd: Influxd) -> None:
    with FaultProxy(influxd.url) as proxy:
        proxy.hang()
        with pytest.raises(TimeoutError):
            post_write(proxy, "any", "m v=1 1", timeout_s=0.3)
    # pytest-timeout fails the test if stop() waited for the hung handler.
    assert proxy.counts == {"hang": 1}


@pytest.mark.parametrize(
    ("mode", "status", "retry_after_s"),
    [
        (Mode.ERROR, 500, None),
        (Mode.ERROR, 503, 1.0),
        (Mode.ERROR, 429, 3.0),
        (Mode.HANG, None, None),
        (Mode.DROP, None, None),
    ],
)
async def test_the_gateway_writer_sees_each_fault_as_retryable(
    fault_proxy: FaultProxy,
    influx_db: str,
    mode: Mode,
    status: int | None,
    retry_after_s: float | None,
) -> None:
    fault_proxy.set_mode(mode, status=status or 503, retry_after=retry_after_s)
    sink = InfluxSink(InfluxSettings(url=fault_proxy.url, database=influx_db, timeout_s=0.3))
    try:
        with pytest.raises(SinkError) as raised:
            await sink.write(["m,device_id=a v=1.5 1000000000"], None, None)
    finally:
        await sink.close()
    assert raised.value.retryable
    assert (raised.value.status, raised.value.retry_after_s) == (status, retry_after_s)
