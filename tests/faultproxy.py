"""An HTTP reverse proxy in front of a real influxd that fails on demand.

Stopping influxd covers "unreachable"; the other ways InfluxDB fails in production need a
server that misbehaves on purpose: answer 500/503/429 (optionally with Retry-After), accept a
request and never answer (the gateway's write times out), or close the connection without an
answer. The fault-injection tests put this proxy between the gateway and the real influxd and
switch its mode while the stream runs.

aiohttp serves and forwards on an event loop in a thread of its own, so a synchronous test
switches modes with a plain method call; `set_mode` returns once the new mode applies to every
later request. Requests are counted per mode, so a test can prove its fault was exercised.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import enum
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Self

import aiohttp
from aiohttp import web

# Hop-by-hop headers (RFC 9110, section 7.6.1) and those aiohttp recomputes for the new body.
# Accept-Encoding is dropped so influxd answers uncompressed and bodies pass through as they are.
_REQUEST_HEADERS_DROPPED = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "host", "content-length", "accept-encoding"}
)
_RESPONSE_HEADERS_DROPPED = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "date", "server"}
)
# A gateway batch is a few hundred kB of line protocol; aiohttp's default limit is 1 MiB.
_MAX_BODY_BYTES = 64 * 1024**2
_UPSTREAM_TIMEOUT_S = 60.0
_THREAD_TIMEOUT_S = 10.0


class Mode(enum.StrEnum):
    PASS = "pass"  # forward to influxd
    ERROR = "error"  # answer `status` (with Retry-After if given) without forwarding
    HANG = "hang"  # read the request, never answer; released (dropped) when the mode changes
    DROP = "drop"  # read the request, close the connection without an answer


@dataclass(frozen=True, slots=True)
class Fault:
    mode: Mode
    status: int = 503
    retry_after: str | None = None


class FaultProxy:
    """`start()` binds a free loopback port; `url` is what the gateway's `[influx] url` names."""

    def __init__(self, upstream_url: str, host: str = "127.0.0.1") -> None:
        self.upstream_url = upstream_url.rstrip("/")
        self.host = host
        self._port: int | None = None
        self._fault = Fault(Mode.PASS)
        self._counts: Counter[str] = Counter()
        self._counts_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None
        self._unhang: asyncio.Event | None = None
        self._upstream: aiohttp.ClientSession | None = None

    # -- control, from the test's thread -------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("fault proxy has no port yet: call start() first")
        return self._port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def mode(self) -> Mode:
        return self._fault.mode

    @property
    def counts(self) -> Counter[str]:
        """Requests received so far, by the mode that handled them ("pass", "error", ...)."""
        with self._counts_lock:
            return Counter(self._counts)

    def start(self) -> Self:
        if self._thread is not None:
            raise RuntimeError(f"fault proxy already running on {self.url}")
        ready: concurrent.futures.Future[int] = concurrent.futures.Future()
        self._thread = threading.Thread(
            target=asyncio.run, args=(self._serve(ready),), name="fault-proxy", daemon=True
        )
        self._thread.start()
        self._port = ready.result(timeout=_THREAD_TIMEOUT_S)
        return self

    def stop(self) -> None:
        """Release hung requests, close every connection and end the thread."""
        thread, loop, stopped = self._thread, self._loop, self._stopped
        if thread is None or loop is None or stopped is None:
            return
        loop.call_soon_threadsafe(stopped.set)
        thread.join(_THREAD_TIMEOUT_S)
        self._thread = self._loop = None

    def set_mode(
        self, mode: Mode | str, *, status: int = 503, retry_after: float | str | None = None
    ) -> None:
        """Apply a mode to every request from now on; leaving `hang` drops the hung requests."""
        fault = Fault(Mode(mode), status, None if retry_after is None else str(retry_after))
        if self._loop is None:
            self._fault = fault
            return
        switched = asyncio.run_coroutine_threadsafe(self._switch(fault), self._loop)
        switched.result(timeout=_THREAD_TIMEOUT_S)

    def pass_through(self) -> None:
        self.set_mode(Mode.PASS)

    def error(self, status: int, retry_after: float | str | None = None) -> None:
        self.set_mode(Mode.ERROR, status=status, retry_after=retry_after)

    def hang(self) -> None:
        self.set_mode(Mode.HANG)

    def drop(self) -> None:
        self.set_mode(Mode.DROP)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.url if self._port is not None else "not started"
        return f"<FaultProxy {where} -> {self.upstream_url} mode={self.mode}>"

    # -- the server, on the proxy's own event loop ---------------------------------------------

    async def _switch(self, fault: Fault) -> None:
        if self._fault.mode is Mode.HANG and fault.mode is not Mode.HANG and self._unhang:
            self._unhang.set()
            self._unhang = asyncio.Event()
        self._fault = fault

    async def _serve(self, ready: concurrent.futures.Future[int]) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        self._unhang = asyncio.Event()
        app = web.Application(client_max_size=_MAX_BODY_BYTES)
        app.router.add_route("*", "/{path:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        timeout = aiohttp.ClientTimeout(total=_UPSTREAM_TIMEOUT_S)
        try:
            async with aiohttp.ClientSession(timeout=timeout, auto_decompress=False) as upstream:
                self._upstream = upstream
                await runner.setup()
                await web.TCPSite(runner, self.host, 0).start()
                ready.set_result(int(runner.addresses[0][1]))
                await self._stopped.wait()
                self._unhang.set()
                await runner.cleanup()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
            raise

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        fault = self._fault
        with self._counts_lock:
            self._counts[fault.mode.value] += 1
        body = await request.read()
        if fault.mode is Mode.PASS:
            return await self._forward(request, body)
        if fault.mode is Mode.ERROR:
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            return web.json_response(
                {"error": f"fault injected by tests/faultproxy (HTTP {fault.status})"},
                status=fault.status,
                headers=headers,
            )
        if fault.mode is Mode.HANG and self._unhang is not None:
            await self._unhang.wait()
        return _drop_connection(request)

    async def _forward(self, request: web.Request, body: bytes) -> web.StreamResponse:
        headers = {
            name: value
            for name, value in request.headers.items()
            if name.lower() not in _REQUEST_HEADERS_DROPPED
        }
        url = self.upstream_url + request.path_qs
        assert self._upstream is not None, "requests arrive only while _serve runs"
        try:
            async with self._upstream.request(
                request.method, url, headers=headers, data=body, allow_redirects=False
            ) as answer:
                payload = await answer.read()
                kept = {
                    name: value
                    for name, value in answer.headers.items()
                    if name.lower() not in _RESPONSE_HEADERS_DROPPED
                }
                return web.Response(status=answer.status, body=payload, headers=kept)
        except (aiohttp.ClientError, TimeoutError) as exc:
            # What a real reverse proxy answers when its upstream is down.
            return web.json_response({"error": f"fault proxy upstream: {exc!r}"}, status=502)


def _drop_connection(request: web.Request) -> web.StreamResponse:
    """Close the socket without an answer; aiohttp then fails to write the response quietly."""
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=500)
