"""Limits against hostile senders (issue 18): topic length, tag value length, the rate
limiter's memory and fairness. Pure functions here; tests/test_hostile.py runs the real
processes."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

from gateway.policies.message_limits import topic_too_long
from gateway.policies.rate_limit import DeviceRateLimit
from gateway.profiles.registry import load_directory

PROFILES = Path(__file__).resolve().parent.parent / "device_profiles"
S = 1_000_000_000


def test_a_topic_within_the_limit_passes_a_longer_one_is_cut_to_it() -> None:
    assert topic_too_long("city/lighting/di-su/sl-0001/telemetry", 1024) is None
    assert topic_too_long("é" * 512, 1024) is None  # 1,024 bytes exactly
    kept, detail = topic_too_long("a/" + "é" * 600, 1024) or ("", "")
    assert len(kept.encode()) <= 1024
    assert kept.startswith("a/é")
    assert detail == "topic of 1202 bytes, limit 1024; the first 1024 are kept"


def test_a_full_table_forgets_the_buckets_that_are_full_again_first() -> None:
    limit = DeviceRateLimit(rate_per_s=1.0, burst=5, max_buckets=100)
    for _ in range(6):
        limit.allow("flood", 0)
    for n in range(99):
        limit.allow(f"idle-{n}", 0)
    for n in range(100):  # 10 s later every idle bucket is full again: those go, not the flood
        limit.allow(f"new-{n}", 10 * S - 1)
    assert limit.tracked <= 100
    assert [limit.allow("flood", 10 * S - 1) for _ in range(6)].count(True) == 5  # refilled
    # by time (1/s for 10 s, capped at the burst), not by a reset: see the next test


def test_a_flooding_topic_gets_no_fresh_burst_when_the_table_fills() -> None:
    """The flood topic keeps sending; a crowd of new topics passes through the table."""
    limit = DeviceRateLimit(rate_per_s=20.0, burst=5000, max_buckets=1000)
    allowed = 0
    for step in range(60_000):  # 60 s at 1,000 flood messages/s, and new topics meanwhile
        now = step * S // 1000
        allowed += limit.allow("flood", now)
        limit.allow(f"stranger-{step}", now)
    assert allowed <= 5000 + 60 * 20 + 1  # burst + rate x time, never a second burst


def test_refused_messages_kept_as_dead_letters_are_bounded_per_topic() -> None:
    limit = DeviceRateLimit(rate_per_s=2.0, burst=3)
    kept = sum(limit.keep_refused("flood", 0) for _ in range(1000))
    assert kept == 3
    assert limit.keep_refused("other", 0)  # another device's share is its own
    assert limit.keep_refused("flood", S)  # and it refills at the rate


def test_the_profile_resolution_cache_is_bounded_in_bytes() -> None:
    registry = load_directory(PROFILES)
    tracemalloc.start()
    try:
        for n in range(20_000):  # 80 MB of distinct topics, each matching a profile
            topic = f"city/lighting/di-su/{n:05d}{'x' * 4000}/telemetry"
            assert registry.resolve(topic) is not None
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 48 * 1024**2  # topics and their segments, 16 M characters at most


def test_topics_seen_once_do_not_stay_in_the_rate_limiter() -> None:
    limit = DeviceRateLimit(rate_per_s=20.0, burst=5000)
    for n in range(100_000):  # one message each, 1 ms apart: full again 50 ms later
        assert limit.allow(f"device-{n}", n * 1_000_000)
    assert limit.tracked <= 1024
