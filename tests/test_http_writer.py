"""The InfluxDB writer's HTTP/1.1 (h11) against a scripted server sending the exact bytes.

Each test is one way an answer can be framed or a connection can end (issue 16): interim 1xx
answers, chunks, the end of the connection, `Connection: close`, a kept-alive connection
dropped while idle, no answer at all. What matters each time: the write's outcome, that the
next answer on a kept-alive connection belongs to the next request, and which connection it
used.
"""

from __future__ import annotations

import asyncio

import pytest

from gateway.config import InfluxSettings
from gateway.errors import SinkError
from gateway.stages.sinks.influx import InfluxSink
from tests.scripted_http import Step, answer, scripted_server

NO_CONTENT = b"HTTP/1.1 204 No Content\r\n\r\n"
ERROR_JSON = b'{"error":"second answer"}'


def sink_for(url: str, timeout_s: float = 5.0) -> InfluxSink:
    return InfluxSink(
        InfluxSettings(url=url, database="db", create_database=False, timeout_s=timeout_s)
    )


async def test_100_continue_before_204_is_skipped_and_keeps_answers_aligned() -> None:
    async with scripted_server(
        Step(b"HTTP/1.1 100 Continue\r\n\r\n" + NO_CONTENT),
        Step(answer(400, "Bad Request", ERROR_JSON, Content_Type="application/json")),
    ) as server:
        sink = sink_for(server.url)
        await sink.write(["m v=1i 1"], None, None)  # the 100 is not the answer
        with pytest.raises(SinkError, match="second answer") as raised:
            await sink.write(["m v=2i 2"], None, None)
        await sink.close()
    assert raised.value.status == 400
    assert [r.connection for r in server.requests] == [1, 1]  # one kept-alive connection
    assert [r.body for r in server.requests] == [b"m v=1i 1", b"m v=2i 2"]


async def test_a_chunked_answer_is_read_whole_and_the_connection_kept() -> None:
    first, second = b'{"error', b'":"split in chunks"}'
    chunked = (
        b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
        + b"%x\r\n%s\r\n" % (len(first), first)
        + b"%x;ext=1\r\n%s\r\n" % (len(second), second)  # a chunk extension, ignored
        + b"0\r\nX-Trailer: yes\r\n\r\n"
    )
    async with scripted_server(Step(chunked), Step(NO_CONTENT)) as server:
        sink = sink_for(server.url)
        with pytest.raises(SinkError, match="split in chunks"):
            await sink.write(["m v=1i 1"], None, None)
        await sink.write(["m v=2i 2"], None, None)
        await sink.close()
    assert [r.connection for r in server.requests] == [1, 1]


async def test_an_answer_ended_by_closing_is_read_to_the_end_and_not_reused() -> None:
    body = b'{"error":"' + b"x" * 70_000 + b' the end"}'  # more than one read's worth
    unframed = b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n\r\n" + body
    async with scripted_server(Step(unframed, close=True), Step(NO_CONTENT)) as server:
        sink = sink_for(server.url)
        with pytest.raises(SinkError) as raised:
            await sink.write(["m v=1i 1"], None, None)
        await sink.write(["m v=2i 2"], None, None)
        await sink.close()
    assert raised.value.status == 400
    assert not raised.value.retryable
    assert [r.connection for r in server.requests] == [1, 2]


async def test_connection_close_is_honoured() -> None:
    closing = b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"
    async with scripted_server(Step(closing, close=True), Step(NO_CONTENT)) as server:
        sink = sink_for(server.url)
        await sink.write(["m v=1i 1"], None, None)
        await sink.write(["m v=2i 2"], None, None)
        await sink.close()
    assert [r.connection for r in server.requests] == [1, 2]


async def test_an_http_1_0_answer_closes_the_connection() -> None:
    async with scripted_server(Step(b"HTTP/1.0 204 No Content\r\n\r\n", close=True)) as server:
        sink = sink_for(server.url)
        await sink.write(["m v=1i 1"], None, None)
        await sink.write(["m v=2i 2"], None, None)
        await sink.close()
    assert [r.connection for r in server.requests] == [1, 2]


async def test_a_connection_dropped_while_idle_is_replaced_transparently() -> None:
    async with scripted_server(Step(NO_CONTENT, close=True), Step(NO_CONTENT)) as server:
        sink = sink_for(server.url)
        await sink.write(["m v=1i 1"], None, None)  # the answer says nothing of closing
        await asyncio.wait_for(server.closed.wait(), 5)
        await sink.write(["m v=2i 2"], None, None)
        await sink.close()
    assert [r.body for r in server.requests][-1] == b"m v=2i 2"
    assert server.requests[-1].connection == 2


async def test_a_kept_alive_connection_closed_instead_of_answering_is_retried_once() -> None:
    """The race a stale connection loses: the request went out, the server closed it unread."""
    async with scripted_server(
        Step(NO_CONTENT), Step(answer=None, close=True), Step(NO_CONTENT)
    ) as server:
        sink = sink_for(server.url)
        await sink.write(["m v=1i 1"], None, None)
        await sink.write(["m v=2i 2"], None, None)
        await sink.close()
    assert [(r.connection, r.body) for r in server.requests] == [
        (1, b"m v=1i 1"),
        (1, b"m v=2i 2"),
        (2, b"m v=2i 2"),
    ]


async def test_a_fresh_connection_closed_without_an_answer_is_a_retryable_failure() -> None:
    async with scripted_server(Step(answer=None, close=True)) as server:
        sink = sink_for(server.url)
        with pytest.raises(SinkError, match="unreachable") as raised:
            await sink.write(["m v=1i 1"], None, None)
        await sink.close()
    assert raised.value.retryable
    assert len(server.requests) == 1  # not retried: only a reused connection may be stale


async def test_a_slow_answer_times_out_as_a_retryable_failure() -> None:
    async with scripted_server(Step(hold=True)) as server:
        sink = sink_for(server.url, timeout_s=0.3)
        with pytest.raises(SinkError, match="unreachable") as raised:
            await sink.write(["m v=1i 1"], None, None)
        await sink.close()
    assert raised.value.retryable
    assert isinstance(raised.value.__cause__, TimeoutError)
    assert len(server.requests) == 1


async def test_what_is_not_http_is_a_retryable_failure() -> None:
    async with scripted_server(Step(b"SSH-2.0-OpenSSH_9.6\r\n\r\n", close=True)) as server:
        sink = sink_for(server.url)
        with pytest.raises(SinkError, match="unreachable") as raised:
            await sink.write(["m v=1i 1"], None, None)
        await sink.close()
    assert raised.value.retryable


async def test_the_request_carries_length_type_and_host() -> None:
    async with scripted_server(Step(NO_CONTENT)) as server:
        sink = sink_for(server.url)
        await sink.write(["m v=1i 1", "m v=2i 2"], None, None)
        await sink.close()
    [request] = server.requests
    assert request.method == "POST"
    assert request.target == "/write?db=db&precision=ns"
    assert request.headers["content-length"] == str(len(b"m v=1i 1\nm v=2i 2"))
    assert request.headers["content-type"] == "text/plain; charset=utf-8"
    assert request.headers["host"] == f"127.0.0.1:{server.port}"
