"""What the hostile suite (tests/test_hostile.py) throws at a real gateway: MQTT messages from a
paho publisher, HTTP clients that never read or never stop asking, and the figures it reads
back (RSS, counts)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

GOOD_TOPIC = "city/lighting/di-su/sl-0001/telemetry"
BAD_TOPIC = "city/lighting/di-su/sl-0002/telemetry"
BAD_PAYLOAD = b'{"ts": not json'
_PUBLISH_TIMEOUT_S = 120.0
_WINDOW = 1000


def streetlight(first_ms: int, n: int) -> bytes:
    """The n-th report of a JSON streetlight, one second apart from `first_ms`."""
    return (
        f'{{"ts": {first_ms + n * 1000}, "lamp": {{"state": "ON", "dim": 50, "fault": 0}},'
        ' "elec": {"p_w": 75.0, "v": 230.0, "i_a": 0.33, "e_kwh": 1.0}}'
    ).encode()


def good_and_bad(count: int) -> list[tuple[str, bytes]]:
    """`count` readings of sl-0001 (device times up to now) interleaved with `count` messages
    of sl-0002 that are not JSON (each one dead letter, invalid_json)."""
    first_ms = int(time.time() * 1000) - count * 1000
    messages = []
    for n in range(count):
        messages.append((GOOD_TOPIC, streetlight(first_ms, n)))
        messages.append((BAD_TOPIC, BAD_PAYLOAD))
    return messages


def publish(port: int, messages: Iterable[tuple[str, bytes]], qos: int = 1) -> int:
    """Publish in order and wait until the broker has each (PUBACK for QoS 1); returns the
    number sent. At most `_WINDOW` unacknowledged at a time: paho refuses to queue more."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"hostile-{time.monotonic_ns()}")
    client.max_inflight_messages_set(_WINDOW)
    window = threading.Semaphore(_WINDOW)
    client.on_publish = lambda *_: window.release()
    client.connect("127.0.0.1", port)
    client.loop_start()
    sent = 0
    try:
        for topic, payload in messages:
            if not window.acquire(timeout=_PUBLISH_TIMEOUT_S):
                raise AssertionError(f"the broker stopped acknowledging after {sent} messages")
            client.publish(topic, payload, qos=qos)
            sent += 1
        for _ in range(_WINDOW):  # every slot back: the broker has them all
            if not window.acquire(timeout=_PUBLISH_TIMEOUT_S):
                raise AssertionError(f"the broker took only part of {sent} messages")
        return sent
    finally:
        client.disconnect()
        client.loop_stop()


def rss_bytes(pid: int) -> int:
    """Resident memory of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for process {pid}")


class HostileHttp:
    """`silent` clients that ask for /devices/stale and never read the answer (a tiny receive
    buffer, kept open), and `looping` threads asking for /devices/stale again and again."""

    def __init__(self, host: str, port: int, *, silent: int, looping: int) -> None:
        self._address = (host, port)
        self._silent = silent
        self._looping = looping
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self.answers = 0  # complete answers the looping clients got

    def __enter__(self) -> HostileHttp:
        for _ in range(self._silent):
            client = socket.socket()
            client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            with contextlib.suppress(OSError):  # refused over the cap: that is the point
                client.connect(self._address)
                client.sendall(b"GET /devices/stale HTTP/1.1\r\nHost: x\r\n\r\n")
            self._sockets.append(client)
        for _ in range(self._looping):
            thread = threading.Thread(target=self._loop, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(OSError), socket.create_connection(self._address, 5) as c:
                c.sendall(b"GET /devices/stale HTTP/1.1\r\nHost: x\r\n\r\n")
                head = c.recv(65536)
                while c.recv(65536):
                    pass
                # A connection over the cap is closed unanswered: not a stale list served.
                if head.startswith(b"HTTP/1.1 200"):
                    self.answers += 1

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
        for client in self._sockets:
            client.close()


@contextlib.contextmanager
def hostile_http(host: str, port: int, *, silent: int, looping: int) -> Iterator[HostileHttp]:
    with HostileHttp(host, port, silent=silent, looping=looping) as clients:
        yield clients
