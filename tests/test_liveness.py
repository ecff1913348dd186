"""Device liveness with a fake clock: times are passed in, nothing sleeps."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from gateway.policies.liveness import NS_PER_S, LivenessTracker, StaleDevice

ROOT = Path(__file__).resolve().parent.parent
T0 = 1_800_000_000 * NS_PER_S


def at(seconds: float) -> int:
    return T0 + int(seconds * NS_PER_S)


def stale_ids(tracker: LivenessTracker, now_s: float) -> list[str]:
    return [device.device_id for device in tracker.stale(at(now_s))]


def test_a_device_is_stale_after_the_multiple_of_its_interval() -> None:
    tracker = LivenessTracker({"lamp": 60.0}, stale_after_intervals=3)
    tracker.seen("lamp", "sl-1", at(0), retained=False)
    assert stale_ids(tracker, 180) == []  # exactly 3 intervals: not yet
    assert tracker.stale(at(181)) == [StaleDevice("lamp", "sl-1", "silent", at(0), 181.0, 60.0)]
    tracker.seen("lamp", "sl-1", at(200), retained=False)
    assert stale_ids(tracker, 201) == []


def test_each_profile_has_its_own_interval_and_the_list_is_longest_silent_first() -> None:
    tracker = LivenessTracker({"lamp": 60.0, "meter": 300.0}, stale_after_intervals=2)
    tracker.seen("lamp", "sl-1", at(0), retained=False)
    tracker.seen("meter", "wm-1", at(0), retained=False)
    tracker.seen("meter", "wm-2", at(-500), retained=False)
    assert stale_ids(tracker, 130) == ["wm-2", "sl-1"]
    assert tracker.stale_count(at(130)) == 2
    assert stale_ids(tracker, 601) == ["wm-2", "sl-1", "wm-1"]


def test_retained_messages_are_not_a_sign_of_life() -> None:
    tracker = LivenessTracker({"lamp": 60.0})
    tracker.seen("lamp", "sl-1", at(0), retained=False)
    tracker.seen("lamp", "sl-1", at(1000), retained=True)  # the broker replaying an old value
    tracker.seen("lamp", "sl-2", at(1000), retained=True)
    assert stale_ids(tracker, 1000) == ["sl-1"]
    assert tracker.tracked == 1


def test_an_older_redelivery_does_not_move_the_last_report_back() -> None:
    tracker = LivenessTracker({"lamp": 60.0})
    tracker.seen("lamp", "sl-1", at(100), retained=False)
    tracker.seen("lamp", "sl-1", at(10), retained=False)
    assert tracker.stale(at(250)) == []
    assert tracker.stale(at(281))[0].last_seen_ns == at(100)


def test_profiles_without_an_interval_are_not_tracked() -> None:
    tracker = LivenessTracker({"lamp": 60.0})
    tracker.seen("camera", "cam-1", at(0), retained=False)
    assert tracker.tracked == 0
    assert tracker.stale(at(10**6)) == []
    assert tracker.unknown_profiles(["lamp", "camera"]) == []
    assert LivenessTracker({"lmap": 60.0}).unknown_profiles(["lamp"]) == ["lmap"]


def test_memory_is_bounded_and_the_overflow_counted() -> None:
    tracker = LivenessTracker({"lamp": 60.0}, max_devices=2)
    for number in range(5):
        tracker.seen("lamp", f"sl-{number}", at(0), retained=False)
    tracker.seen("lamp", "sl-0", at(10), retained=False)  # known devices keep updating
    assert tracker.tracked == 2
    assert tracker.overflow_reports == 3
    assert stale_ids(tracker, 185) == ["sl-1"]


@pytest.mark.parametrize("payload", [b"offline", b" Offline\n", "false", b"0", b"lost"])
def test_a_last_will_marks_the_device_offline_until_it_reports(payload: bytes | str) -> None:
    tracker = LivenessTracker({"lamp": 60.0})
    tracker.seen("lamp", "sl-1", at(0), retained=False)
    assert tracker.availability("sl-1", payload, at(5))
    assert tracker.stale(at(10)) == [StaleDevice("lamp", "sl-1", "offline", at(0), 10.0, 60.0)]
    tracker.seen("lamp", "sl-1", at(20), retained=False)  # back: a reading after the will
    assert tracker.stale(at(21)) == []


def test_online_clears_offline_and_junk_is_refused() -> None:
    tracker = LivenessTracker({"lamp": 60.0})
    tracker.seen("lamp", "sl-1", at(0), retained=False)
    tracker.availability("sl-1", b"offline", at(5))
    assert tracker.availability("sl-1", b"online", at(6))
    assert tracker.stale(at(10)) == []
    assert not tracker.availability("sl-1", b"\xff{maybe}", at(7))


def test_a_device_known_only_from_its_last_will_is_listed() -> None:
    tracker = LivenessTracker({"lamp": 60.0})
    tracker.availability("sl-9", b"offline", at(0))
    assert tracker.stale(at(30)) == [StaleDevice("", "sl-9", "offline", 0, 30.0, 0.0)]
    assert tracker.tracked == 0


def test_availability_is_bounded_too() -> None:
    tracker = LivenessTracker({}, max_devices=1)
    tracker.availability("a", b"offline", at(0))
    tracker.availability("b", b"offline", at(0))
    assert stale_ids(tracker, 1) == ["a"]
    assert tracker.overflow_reports == 1


def test_the_multiplier_must_be_positive() -> None:
    with pytest.raises(ValueError, match="stale_after_intervals"):
        LivenessTracker({}, stale_after_intervals=0)


def test_the_module_is_pure() -> None:
    tree = ast.parse((ROOT / "gateway" / "policies" / "liveness.py").read_text(encoding="utf-8"))
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert imported <= {"__future__", "collections.abc", "dataclasses", "heapq", "typing"}
