"""The write contract of each engine, one suite for all (issue 20).

Each case is a sequence of writes; what the gateway must conclude from the last answer is
written down once per engine: accepted, retryable, or refused with the refused lines named
(and whether the others were stored). The suite runs against a scripted server sending each
engine's documented answer (status, headers, body as its docs and source show them), and
against every real engine available here: influxd 1.6 through /write, VictoriaMetrics through
/write and /api/v2/write. A scripted answer that drifts from the real server's shows up as the
same case passing on one and failing on the other.

Documented answers used (InfluxDB docs "Troubleshoot issues writing data" for 1.x/2.x/3 Core,
the v3 write_lp page for the partial-write body, VictoriaMetrics' "How to send data from
InfluxDB-compatible agents"): 1.x answers 400 `{"error": "partial write: ..."}` and stores the
rest; 2.x answers 422 for a partial write (rest stored) and 400 naming the first unparsable line
(nothing stored); InfluxDB 3 answers 400 with `data: [{line_number, error_message,
original_line}]` (rest stored); VictoriaMetrics answers 204 and drops what it cannot parse,
logging it, and stores a number whatever type it had before.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from gateway.config import InfluxSettings
from gateway.errors import SinkError
from gateway.stages.sinks import RefusedLinesError
from gateway.stages.sinks.influx import InfluxSink
from tests.scripted_http import Step, answer, scripted_server
from tests.servers import Influxd, VictoriaMetrics

T0 = 1_700_000_000 * 10**9
NO_CONTENT = Step(b"HTTP/1.1 204 No Content\r\nX-Influxdb-Version: 1.8.0\r\n\r\n")


def line(value: str, second: int) -> str:
    return f"m,device_id=d1 v={value} {T0 + second * 10**9}"


@dataclass(frozen=True)
class Outcome:
    accepted: bool
    retryable: bool | None = None
    refused: frozenset[int] | None = None  # indices named by the answer
    others_written: bool | None = None
    retry_after_s: float | None = None


ACCEPTED = Outcome(accepted=True)


def outcome_of(error: SinkError | None) -> Outcome:
    if error is None:
        return ACCEPTED
    if isinstance(error, RefusedLinesError):
        return Outcome(False, False, frozenset(error.refused), error.others_written)
    return Outcome(False, error.retryable, retry_after_s=error.retry_after_s)


# ---- the cases: writes in order; the last one's outcome is the contract -------------------------

CASES: dict[str, list[list[str]]] = {
    "accepted": [[line("1.5", 1), line("2.5", 2)]],
    "type_conflict": [[line("1i", 1)], [line("2i", 2), line("2.5", 3), line("3i", 4)]],
    "unparsable": [[line("1i", 1), "m,device_id=d1 v= 2", line("3i", 3)]],
}


def _json(status: int, reason: str, body: object, **headers: str) -> Step:
    return Step(
        answer(
            status, reason, json.dumps(body).encode(), Content_Type="application/json", **headers
        )
    )


_V1_CONFLICT = (
    'field type conflict: input field "v" on measurement "m" is type float, '
    "already exists as type integer dropped=1"
)
_V3_PARTIAL = "partial write of line protocol occurred"


@dataclass(frozen=True)
class Engine:
    api: str
    answers: dict[str, list[Step]]  # case -> the engine's answer to each write
    outcomes: dict[str, Outcome]
    stored: dict[str, int]  # case -> samples of m.v stored afterwards


INFLUXDB_1 = Engine(
    "v1",
    {
        "accepted": [NO_CONTENT],
        "type_conflict": [
            NO_CONTENT,
            _json(400, "Bad Request", {"error": f"partial write: {_V1_CONFLICT}"}),
        ],
        "unparsable": [
            _json(
                400,
                "Bad Request",
                {
                    "error": "partial write: unable to parse 'm,device_id=d1 v= 2': "
                    "missing field value dropped=0"
                },
            )
        ],
    },
    {
        "accepted": ACCEPTED,
        "type_conflict": Outcome(False, False, frozenset({1}), True),
        "unparsable": Outcome(False, False, frozenset({1}), True),
    },
    {"accepted": 2, "type_conflict": 3, "unparsable": 2},
)

INFLUXDB_2 = Engine(
    "v2",
    {
        "accepted": [NO_CONTENT],
        "type_conflict": [
            NO_CONTENT,
            _json(
                422,
                "Unprocessable Entity",
                {
                    "code": "unprocessable entity",
                    "message": f"failure writing points to database: partial write: {_V1_CONFLICT}",
                },
            ),
        ],
        "unparsable": [
            _json(
                400,
                "Bad Request",
                {
                    "code": "invalid",
                    "message": "unable to parse 'm,device_id=d1 v= 2': missing field value",
                },
            )
        ],
    },
    {
        "accepted": ACCEPTED,
        "type_conflict": Outcome(False, False, frozenset({1}), True),
        "unparsable": Outcome(False, False, frozenset({1}), False),  # 2.x stored nothing
    },
    {"accepted": 2, "type_conflict": 3, "unparsable": 0},
)


def _v3_partial(number: int, original: str, message: str) -> Step:
    data = [{"original_line": original, "line_number": number, "error_message": message}]
    return _json(400, "Bad Request", {"error": _V3_PARTIAL, "data": data})


INFLUXDB_3 = Engine(
    "v3",
    {
        "accepted": [NO_CONTENT],
        "type_conflict": [
            NO_CONTENT,
            _v3_partial(
                2,
                line("2.5", 3),
                "invalid column type for column 'v', expected iox::column_type::field::integer, "
                "got iox::column_type::field::float",
            ),
        ],
        "unparsable": [_v3_partial(2, "m,device_id=d1 v= 2", "No fields were provided")],
    },
    INFLUXDB_1.outcomes,
    INFLUXDB_1.stored,
)

VICTORIA_METRICS = Engine(
    "v1",
    {case: [NO_CONTENT] * len(writes) for case, writes in CASES.items()},
    dict.fromkeys(CASES, ACCEPTED),  # nothing refused: it cannot tell the gateway anything
    {"accepted": 2, "type_conflict": 4, "unparsable": 2},
)

SCRIPTED = {
    "influxdb1": INFLUXDB_1,
    "influxdb2": INFLUXDB_2,
    "influxdb3": INFLUXDB_3,
    "victoriametrics-v1": VICTORIA_METRICS,
    "victoriametrics-v2": VICTORIA_METRICS,
}
SCRIPTED_API = {"victoriametrics-v2": "v2"}


def settings_for(url: str, api: str, database: str) -> InfluxSettings:
    if api == "v2":
        return InfluxSettings(url=url, api="v2", org="town", bucket=database, token="t0k")
    return InfluxSettings(url=url, api=api, database=database, token="t0k" if api == "v3" else None)


async def run_case(settings: InfluxSettings, case: str) -> Outcome:
    sink = InfluxSink(settings)
    try:
        *first, last = CASES[case]
        for lines in first:
            await sink.write(lines, None, None)
        try:
            await sink.write(last, None, None)
        except SinkError as exc:
            return outcome_of(exc)
        return ACCEPTED
    finally:
        await sink.close()


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("engine", sorted(SCRIPTED))
async def test_documented_answers(engine: str, case: str) -> None:
    spec = SCRIPTED[engine]
    api = SCRIPTED_API.get(engine, spec.api)
    async with scripted_server(*spec.answers[case]) as server:
        outcome = await run_case(settings_for(server.url, api, "town"), case)
    assert outcome == spec.outcomes[case]
    assert len(server.requests) == len(CASES[case])  # one request per write: no search


@pytest.mark.integration
@pytest.mark.parametrize("case", sorted(CASES))
async def test_real_influxdb_1(influxd: Influxd, influx_db: str, case: str) -> None:
    outcome = await run_case(settings_for(influxd.url, "v1", influx_db), case)
    assert outcome == INFLUXDB_1.outcomes[case]
    assert influxd.count(influx_db, "m", "v") == INFLUXDB_1.stored[case]


@pytest.mark.integration
@pytest.mark.parametrize("api", ["v1", "v2"])
@pytest.mark.parametrize("case", sorted(CASES))
async def test_real_victoria_metrics(
    victoria_metrics: VictoriaMetrics, api: str, case: str
) -> None:
    outcome = await run_case(settings_for(victoria_metrics.url, api, "town"), case)
    assert outcome == VICTORIA_METRICS.outcomes[case]
    assert victoria_metrics.samples('{__name__="m_v"}') == VICTORIA_METRICS.stored[case]


# ---- answers about the request, not the data: scripted from the docs ---------------------------


def _errors() -> Iterator[tuple[str, str, Step, Outcome]]:
    busy = Outcome(False, True, retry_after_s=7.0)
    alarm = Outcome(False, True)
    refused = Outcome(False, False)
    yield "v1", "auth", _json(401, "Unauthorized", {"error": "authorization failed"}), alarm
    yield "v1", "forbidden", _json(403, "Forbidden", {"error": "not authorized"}), alarm
    yield (
        "v1",
        "timeout",
        _json(500, "Internal Server Error", {"error": "timeout"}),
        Outcome(False, True),
    )
    yield (
        "v1",
        "too_large",
        _json(413, "Request Entity Too Large", {"error": "Request Entity Too Large"}),
        refused,
    )
    yield (
        "v2",
        "auth",
        _json(401, "Unauthorized", {"code": "unauthorized", "message": "unauthorized access"}),
        alarm,
    )
    yield (
        "v2",
        "rate",
        _json(429, "Too Many Requests", {"code": "too many requests"}, Retry_After="7"),
        busy,
    )
    yield (
        "v2",
        "unavailable",
        _json(503, "Service Unavailable", {"code": "unavailable"}, Retry_After="7"),
        busy,
    )
    yield "v3", "auth", Step(answer(401, "Unauthorized")), alarm
    yield (
        "v3",
        "accept_partial_false",
        _json(
            400,
            "Bad Request",
            {
                "error": "parsing failed for write_lp endpoint",
                "data": {"original_line": "m v= 2", "line_number": 1, "error_message": "No fields"},
            },
        ),
        Outcome(False, False, frozenset({0}), False),
    )


@pytest.mark.parametrize(
    ("api", "name", "step", "expected"), list(_errors()), ids=lambda v: str(v)[:20]
)
async def test_documented_errors(api: str, name: str, step: Step, expected: Outcome) -> None:
    async with scripted_server(step) as server:
        sink = InfluxSink(settings_for(server.url, api, "town"))
        try:
            await sink.write([line("1i", 1), line("2i", 2)], None, None)
        except SinkError as exc:
            outcome = outcome_of(exc)
        else:
            outcome = ACCEPTED
        await sink.close()
    assert outcome == expected, name


async def test_each_api_sends_its_path_and_credentials() -> None:
    """As the engines document them: v1 user:password as Basic, or a token as Bearer (InfluxDB
    3's /write); v2 `Token`; v3 `Bearer`, nanosecond precision, partial writes accepted."""
    configurations = [
        InfluxSettings(url="", database="db", username="gw", password="pw"),
        InfluxSettings(url="", database="db", token="t1"),
        InfluxSettings(url="", api="v2", org="o", bucket="b", token="t2"),
        InfluxSettings(url="", api="v3", database="db", token="t3"),
        InfluxSettings(url="", api="v3", database="db", token="t3", no_sync=True),
    ]
    async with scripted_server() as server:
        for settings in configurations:
            sink = InfluxSink(settings.model_copy(update={"url": server.url}))
            await sink.write([line("1i", 1)], None, None)
            await sink.close()
    sent = [(r.target, r.headers.get("authorization")) for r in server.requests]
    assert sent == [
        ("/write?db=db&precision=ns", "Basic Z3c6cHc="),
        ("/write?db=db&precision=ns", "Bearer t1"),
        ("/api/v2/write?org=o&bucket=b&precision=ns", "Token t2"),
        ("/api/v3/write_lp?db=db&precision=nanosecond&accept_partial=true", "Bearer t3"),
        (
            "/api/v3/write_lp?db=db&precision=nanosecond&accept_partial=true&no_sync=true",
            "Bearer t3",
        ),
    ]
