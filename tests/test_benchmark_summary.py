"""The benchmark's summary arithmetic holds for runs too short to measure."""

from __future__ import annotations

from benchmarks.full import GATEWAY, PAHO, Drain, _cpu, _ratio


def _drain(cpu_s: float) -> Drain:
    return Drain(messages=600, wall_s=1.0, cpu_s=cpu_s, peak_rss_mb=[50.0])


def test_a_contender_finished_within_one_clock_tick_gives_no_cpu_ratio() -> None:
    # CI saw paho_count drain 600 messages in under 10 ms of CPU: 0 µs per message.
    runs = [{GATEWAY: _drain(0.02), PAHO: _drain(0.0)}]
    assert _ratio(runs, GATEWAY, PAHO, _cpu) is None


def test_runs_that_measured_something_still_give_their_ratio() -> None:
    runs = [
        {GATEWAY: _drain(0.02), PAHO: _drain(0.0)},
        {GATEWAY: _drain(0.03), PAHO: _drain(0.01)},
    ]
    assert _ratio(runs, GATEWAY, PAHO, _cpu) == {"median": 3.0, "min": 3.0, "max": 3.0}
