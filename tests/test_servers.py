"""The private servers themselves: if these fail, every integration test would mislead."""

from __future__ import annotations

import os
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from tests.servers import (
    Influxd,
    InfluxHTTPError,
    Mosquitto,
    ServerNotInstalledError,
    ServerStartError,
    free_port,
)

pytestmark = pytest.mark.integration

# Deadlines, not sleeps: a loaded CI machine only makes these tests slower, never red.
_DEADLINE_S = 20.0

PROTOCOLS = [
    pytest.param(MQTTProtocolVersion.MQTTv311, id="mqtt311"),
    pytest.param(MQTTProtocolVersion.MQTTv5, id="mqtt5"),
]


class _Client:
    """A paho client driven by loop() from the test's own thread: no background thread races."""

    def __init__(
        self,
        broker: Mosquitto,
        client_id: str,
        protocol: MQTTProtocolVersion = MQTTProtocolVersion.MQTTv5,
        *,
        persistent: bool = False,
    ) -> None:
        self._broker = broker
        self._v5 = protocol is MQTTProtocolVersion.MQTTv5
        self._persistent = persistent
        self.paho = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            # MQTT 3.1.1 sets session persistence here; MQTT 5 sets it at connect().
            clean_session=None if self._v5 else not persistent,
            protocol=protocol,
        )
        self.paho.max_inflight_messages_set(1000)
        self.paho.on_connect = self._on_connect
        self.paho.on_disconnect = self._on_disconnect
        self.paho.on_subscribe = self._on_subscribe
        self.paho.on_message = self._on_message
        self.connected = False
        self.session_present: bool | None = None
        self.subscribed = 0
        self.messages: list[mqtt.MQTTMessage] = []

    def _on_connect(
        self,
        _client: mqtt.Client,
        _userdata: object,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        assert not reason.is_failure, reason
        self.connected = True
        self.session_present = flags.session_present

    def _on_disconnect(self, *_args: object) -> None:
        self.connected = False

    def _on_subscribe(self, *_args: object) -> None:
        self.subscribed += 1

    def _on_message(self, _client: mqtt.Client, _userdata: object, msg: mqtt.MQTTMessage) -> None:
        self.messages.append(msg)

    def run_until(self, done: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + _DEADLINE_S
        while not done():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            self.paho.loop(timeout=0.05)

    def connect(self) -> _Client:
        if self._v5:
            # paho 2.2 leaves Properties.__init__ unannotated.
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho's Properties is not annotated
            # MQTT 5 drops the session at disconnect unless the client asks it to be kept.
            properties.SessionExpiryInterval = 3600 if self._persistent else 0
            self.paho.connect(
                self._broker.host,
                self._broker.port,
                clean_start=not self._persistent,
                properties=properties,
            )
        else:
            self.paho.connect(self._broker.host, self._broker.port)
        self.run_until(lambda: self.connected, "CONNACK")
        return self

    def subscribe(self, topic: str) -> None:
        wanted = self.subscribed + 1
        self.paho.subscribe(topic, qos=1)
        self.run_until(lambda: self.subscribed >= wanted, "SUBACK")

    def publish_all(self, topic: str, payloads: list[bytes]) -> None:
        infos = [self.paho.publish(topic, payload, qos=1) for payload in payloads]
        self.run_until(lambda: all(info.is_published() for info in infos), "PUBACKs")

    def receive(self, count: int) -> list[bytes]:
        self.run_until(lambda: len(self.messages) >= count, f"{count} messages")
        return [bytes(msg.payload) for msg in self.messages]

    def disconnect(self) -> None:
        self.paho.disconnect()
        self.run_until(lambda: not self.connected, "disconnect")


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# -- InfluxDB -----------------------------------------------------------------------------------

LINES = (
    "streetlight,district=a,device_id=L1 power_w=12.5,lamp_on=1i 1700000000000000000\n"
    "streetlight,district=a,device_id=L2 power_w=7.25,lamp_on=0i 1700000001000000001\n"
)


def test_influxd_http_write_then_query_returns_the_points(influxd: Influxd, influx_db: str) -> None:
    query = urllib.parse.urlencode({"db": influx_db, "precision": "ns"})
    url = f"{influxd.url}/write?{query}"
    request = urllib.request.Request(url, data=LINES.encode(), method="POST")  # noqa: S310 - local
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - local server
        assert response.status == 204

    assert influxd.count(influx_db, "streetlight", "power_w") == 2
    assert influxd.points(influx_db, "streetlight") == [
        {
            "time": 1700000000000000000,
            "district": "a",
            "device_id": "L1",
            "power_w": 12.5,
            "lamp_on": 1,
        },
        {
            "time": 1700000001000000001,
            "district": "a",
            "device_id": "L2",
            "power_w": 7.25,
            "lamp_on": 0,
        },
    ]


def test_influx_db_is_a_fresh_database_of_its_own(influxd: Influxd, influx_db: str) -> None:
    assert influx_db in influxd.databases()
    assert influxd.count(influx_db, "streetlight", "power_w") == 0
    assert influxd.points(influx_db, "streetlight") == []


def test_influxd_errors_carry_influxdb_message(influxd: Influxd, influx_db: str) -> None:
    with pytest.raises(InfluxHTTPError, match="error parsing query"):
        influxd.query("SELEKT 1", influx_db)
    with pytest.raises(InfluxHTTPError, match="unable to parse") as rejected:
        influxd.write(influx_db, "streetlight power_w=\n")
    assert rejected.value.status == 400


def test_influxd_restart_keeps_port_and_data(private_influxd: Influxd) -> None:
    private_influxd.create_database("keep")
    private_influxd.write("keep", LINES)
    url, old_pid = private_influxd.url, private_influxd.pid

    private_influxd.restart()

    assert private_influxd.url == url
    assert private_influxd.pid != old_pid
    assert private_influxd.count("keep", "streetlight", "power_w") == 2


def test_influxd_with_auth_rejects_anonymous_queries(tmp_path: Path) -> None:
    with Influxd(tmp_path, auth=True) as server:
        server.create_admin("admin", "s3cret'quote")
        server.create_database("secured")
        assert "secured" in server.databases()

        anonymous = f"{server.url}/query?" + urllib.parse.urlencode({"q": "SHOW DATABASES"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(anonymous, timeout=10)  # noqa: S310 - local server
        refused.value.close()
        assert refused.value.code == 401


# -- mosquitto ----------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_mosquitto_qos1_publish_subscribe_round_trip(
    mosquitto: Mosquitto, protocol: MQTTProtocolVersion
) -> None:
    subscriber = _Client(mosquitto, "sub", protocol).connect()
    subscriber.subscribe("city/+/reading")
    publisher = _Client(mosquitto, "pub", protocol).connect()

    publisher.publish_all("city/a/reading", [b"one", b"two"])

    assert subscriber.receive(2) == [b"one", b"two"]
    assert all(msg.qos == 1 for msg in subscriber.messages)
    publisher.disconnect()
    subscriber.disconnect()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_mosquitto_restart_keeps_offline_persistent_session_queue(
    mosquitto: Mosquitto, protocol: MQTTProtocolVersion
) -> None:
    gateway = _Client(mosquitto, "gateway", protocol, persistent=True).connect()
    gateway.subscribe("city/#")
    gateway.disconnect()
    publisher = _Client(mosquitto, "device", protocol).connect()
    publisher.publish_all("city/a/reading", [b"while offline"])
    publisher.disconnect()
    address = mosquitto.address

    mosquitto.restart()

    assert mosquitto.address == address
    gateway = _Client(mosquitto, "gateway", protocol, persistent=True).connect()
    assert gateway.session_present
    assert gateway.receive(1) == [b"while offline"]
    gateway.disconnect()


def test_mosquitto_queues_more_than_its_default_1000_for_offline_session(
    mosquitto: Mosquitto,
) -> None:
    gateway = _Client(mosquitto, "gateway", persistent=True).connect()
    gateway.subscribe("city/#")
    gateway.disconnect()
    backlog = [str(n).encode() for n in range(5000)]
    publisher = _Client(mosquitto, "device").connect()
    publisher.publish_all("city/a/reading", backlog)
    publisher.disconnect()

    mosquitto.restart()

    gateway = _Client(mosquitto, "gateway", persistent=True).connect()
    assert gateway.receive(len(backlog)) == backlog
    gateway.disconnect()


def test_mosquitto_listens_on_ipv6_loopback(tmp_path: Path) -> None:
    try:
        free_port("::1")
    except OSError:
        pytest.skip("this machine has no IPv6 loopback (::1)")
    with Mosquitto(tmp_path, host="::1") as broker:
        assert broker.address == f"[::1]:{broker.port}"
        subscriber = _Client(broker, "sub").connect()
        subscriber.subscribe("t")
        _Client(broker, "pub").connect().publish_all("t", [b"v6"])
        assert subscriber.receive(1) == [b"v6"]


def test_stop_leaves_no_process_behind(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path).start()
    pid = broker.pid
    assert pid is not None
    assert broker.last_start_s is not None

    broker.stop()

    assert not broker.running
    assert not _process_exists(pid)
    with (
        pytest.raises(ConnectionRefusedError),
        socket.create_connection((broker.host, broker.port), timeout=1),
    ):
        pass


def test_bad_configuration_fails_with_the_log_tail(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path, extra_conf="no_such_option 1")
    with pytest.raises(ServerStartError, match="no_such_option"):
        broker.start()
    assert not broker.running


def test_missing_binary_says_how_to_install_it(tmp_path: Path) -> None:
    with pytest.raises(ServerNotInstalledError, match=r"make test.*apt-get install"):
        Mosquitto(tmp_path, binary="mosquitto-not-installed").start()


@pytest.mark.parametrize("server_class", [Mosquitto, Influxd])
def test_busy_port_fails_clearly_even_though_something_answers_there(
    tmp_path: Path, server_class: type[Mosquitto] | type[Influxd]
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as squatter:
        port = squatter.getsockname()[1]
        server = server_class(tmp_path, port=port)
        with pytest.raises(ServerStartError, match=r"(?i)address already in use"):
            server.start()
    assert not server.running
