"""`python -m benchmarks.full --quick` still runs end to end and says nothing was lost.

Only the shape of the summary and the loss counts are checked, never a timing: this box is
shared, and the benchmark's numbers are for people to read, not for the suite to judge.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.harness import ROOT

pytestmark = pytest.mark.integration

CONTENDERS = ("gateway", "gateway_2_workers", "paho_count", "naive")


def test_quick_benchmark_prints_a_complete_summary_with_nothing_lost() -> None:
    finished = subprocess.run(
        [sys.executable, "-m", "benchmarks.full", "--quick", "--messages", "600",
         "--latency-s", "1", "--workers", "2", "--outage-s", "3"],
        cwd=ROOT, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert finished.returncode == 0, finished.stderr[-3000:]
    summary = json.loads(finished.stdout.strip().splitlines()[-1])
    for name in CONTENDERS:
        assert set(summary[name]) >= {"messages_per_s", "cpu_us_per_message", "peak_rss_mb"}
        assert set(summary[name]["messages_per_s"]) == {"median", "min", "max"}
    assert set(summary["latency"]) == {"rate_messages_per_s", "p50_s", "p99_s"}
    assert set(summary["ratios"]) >= {
        "gateway_vs_naive_drain_rate",
        "two_workers_vs_one_drain_rate",
    }
    # A CPU ratio is left out when its denominator drained within one clock tick (reads 0).
    for ratio, contender in (
        ("gateway_vs_naive_cpu_per_message", "naive"),
        ("gateway_vs_paho_count_cpu_per_message", "paho_count"),
    ):
        measured = summary[contender]["cpu_us_per_message"]["max"] > 0
        assert (ratio in summary["ratios"]) == measured, (ratio, summary[contender])
    assert set(summary["targets"]) == {
        "cpu_us_per_message_max",
        "drain_vs_naive_min",
        "latency_p99_s_max",
        "peak_rss_mb_max",
        "outage_rss_growth_pct_max",
        "replay_points_per_s_min",
    }
    assert set(summary["outage"]) >= {"rss_growth_pct", "replay_points_per_s", "replay_s"}
    assert summary["outage"]["points_waiting_at_restart"] > 0  # the outage held points back
    assert summary["messages"] == 600
    assert (summary["lost"], summary["doubled"]) == (0, 0)
    assert (summary["naive"]["lost"], summary["paho_count"]["lost"]) == (0, 0)
