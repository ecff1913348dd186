"""Reading the refused lines out of an engine's error answer (gateway/stages/sinks/refusals.py):
exact when the answer accounts for every refused line, None (a search instead) otherwise."""

from __future__ import annotations

import json

from gateway.stages.sinks.refusals import Refusal, named_refusals

CONFLICT = (
    'partial write: field type conflict: input field "v" on measurement "m" is type float, '
    "already exists as type integer dropped={}"
)


def v1(text: str) -> str:
    return json.dumps({"error": text})


def test_influxdb_3_names_lines_from_one() -> None:
    body = json.dumps(
        {
            "error": "partial write of line protocol occurred",
            "data": [
                {"original_line": "b", "line_number": 2, "error_message": "no fields"},
                {"original_line": "d", "line_number": 4, "error_message": "type"},
            ],
        }
    )
    assert named_refusals(body, ["a", "b", "c", "d"]) == Refusal({1: "no fields", 3: "type"}, True)


def test_an_influxdb_3_line_number_we_did_not_send_trusts_nothing() -> None:
    body = json.dumps(
        {
            "error": "partial write of line protocol occurred",
            "data": [{"line_number": 3, "error_message": "x"}],
        }
    )
    assert named_refusals(body, ["a", "b"]) is None


def test_a_field_type_conflict_finds_every_line_of_another_type() -> None:
    lines = [
        "m v=1i 1",
        "m v=1.5 2",
        'm,t=a w=2i,v="x, y" 3',  # a string with a comma and a space
        "m\\ x v=2.5 4",  # another measurement: "m x"
        "other v=2.5 5",
        "m v=t 6",
    ]
    found = named_refusals(v1(CONFLICT.format(3)), lines)
    assert found is not None
    assert sorted(found.refused) == [1, 2, 5]
    assert found.others_written


def test_a_conflict_count_that_does_not_add_up_gives_no_answer() -> None:
    """1.x names one conflict; if other lines were dropped for another, we cannot tell which."""
    assert named_refusals(v1(CONFLICT.format(2)), ["m v=1.5 1", "m v=1i 2"]) is None


def test_unparsable_lines_are_found_also_when_repeated() -> None:
    text = "partial write: unable to parse 'm v= 1': missing field value\n" * 2
    lines = ["m v= 1", "m v=1i 2", "m v= 1"]
    found = named_refusals(v1(text.rstrip("\n") + " dropped=0"), lines)
    assert found is not None
    assert sorted(found.refused) == [0, 2]
    assert found.refused[0].startswith("unable to parse 'm v= 1': missing field value")


def test_an_unparsable_line_that_is_not_ours_gives_no_answer() -> None:
    assert named_refusals(v1("unable to parse 'x y': bad"), ["m v=1i 1"]) is None


def test_influxdb_2_parse_error_names_one_line_and_stored_nothing() -> None:
    body = json.dumps({"code": "invalid", "message": "unable to parse 'm v=': missing field value"})
    assert named_refusals(body, ["m v=1i 1", "m v="]) == Refusal(
        {1: "unable to parse 'm v=': missing field value"}, others_written=False
    )


def test_drops_that_name_no_line_give_no_answer() -> None:
    body = v1("partial write: points beyond retention policy dropped=2")
    assert named_refusals(body, ["m v=1i 1", "m v=1i 2"]) is None
    assert named_refusals("<html>bad gateway</html>", ["m v=1i 1"]) is None
