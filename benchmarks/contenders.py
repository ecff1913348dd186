"""The processes that drain the backlog: the gateway (1 or N workers) and the two references.

Every contender is a separate process with its own persistent MQTT session, created before
the backlog is published, so the broker queues one copy of the same backlog for each. A drain
starts the contender while the broker is down, waits until the process is loaded and idle
(start-up is not draining), then starts the broker: the clock and the CPU count start there.
"""

from __future__ import annotations

import queue
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from benchmarks.proc import peak_rss_mb, tree, tree_cpu_s
from tests.harness import ROOT, gateway_config
from tests.servers import Influxd, Mosquitto

_IDLE_CPU_S = 0.02  # less CPU than this in _IDLE_WINDOW_S: the process has finished loading
_IDLE_WINDOW_S = 0.3
_START_TIMEOUT_S = 60.0


@dataclass(slots=True)
class Running:
    """A started contender: its process, stdout lines, and CPU when the drain began."""

    process: subprocess.Popen[bytes]
    lines: queue.Queue[str] = field(default_factory=queue.Queue)
    cpu_at_start_s: float = 0.0

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu_s(self) -> float:
        return tree_cpu_s(self.pid) - self.cpu_at_start_s

    def peak_rss_mb(self) -> list[float]:
        """VmHWM of every process that does the work (the workers, not their supervisor)."""
        members = tree(self.pid)
        workers = members[1:] or members
        return [peak_rss_mb(pid) for pid in workers]

    def wait_line(self, text: str, timeout_s: float) -> str | None:
        """The next line of output containing `text`, or None (timed out or exited)."""
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=min(left, 0.5))
            except queue.Empty:
                if self.process.poll() is not None:
                    return None
                continue
            if text in line:
                return line
        return None

    def stop(self, timeout_s: float = 30.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _pump(stream: IO[bytes], lines: queue.Queue[str], log: Path) -> None:
    with log.open("ab") as copy:
        for raw in stream:
            copy.write(raw)
            copy.flush()
            lines.put(raw.decode(errors="replace").rstrip("\n"))


def spawn(command: list[str], log: Path) -> Running:
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT)
    running = Running(process)
    assert process.stdout is not None
    threading.Thread(target=_pump, args=(process.stdout, running.lines, log), daemon=True).start()
    return running


def wait_idle(running: Running, marker: str) -> None:
    """Wait for the marker line, then until the process tree stops using CPU; stop the
    process if it never gets there."""
    try:
        _wait_idle(running, marker)
    except BaseException:
        running.stop()
        raise


def _wait_idle(running: Running, marker: str) -> None:
    if running.wait_line(marker, _START_TIMEOUT_S) is None:
        raise RuntimeError(f"contender never printed {marker!r} (exit {running.process.poll()})")
    deadline = time.monotonic() + _START_TIMEOUT_S
    before = tree_cpu_s(running.pid)
    while time.monotonic() < deadline:
        time.sleep(_IDLE_WINDOW_S)
        now = tree_cpu_s(running.pid)
        if now - before < _IDLE_CPU_S:
            running.cpu_at_start_s = now
            return
        before = now
    raise RuntimeError("contender still busy after start-up")


@dataclass(frozen=True, slots=True)
class GatewayContender:
    """`python -m gateway run [--workers N]` with the shipped defaults where they matter."""

    name: str
    database: str
    workers: int
    workdir: Path

    def config(self, broker: Mosquitto, influxd: Influxd) -> Path:
        mqtt: dict[str, str | int | float] = {
            "client_id": f"bench-{self.name}",
            # The broker is down while the gateway starts: reconnect within 50 ms once it is up.
            "reconnect_min_s": 0.02,
            "reconnect_max_s": 0.05,
        }
        if self.workers > 1:
            mqtt["shared_group"] = f"bench-{self.name}"
        return gateway_config(
            self.workdir / f"{self.name}.toml",
            broker,
            influxd,
            self.database,
            overrides={
                "mqtt": mqtt,
                "batch": {"max_points": 5000, "max_age_s": 1.0},  # the shipped defaults
                "spool": {"dir": str(self.workdir / f"{self.name}-state")},
                # Its own points would blur the written-points counter the latency phase reads.
                "monitoring": {"enabled": False},
            },
        )

    def command(self, config: Path) -> list[str]:
        workers = ["--workers", str(self.workers)] if self.workers > 1 else []
        return [sys.executable, "-m", "gateway", "run", "--config", str(config), *workers]

    def create_session(self, broker: Mosquitto, influxd: Influxd) -> None:
        running = spawn(self.command(self.config(broker, influxd)), self._log)
        _wait_subscribed(running, self.workers)
        running.stop()

    def start(self, broker: Mosquitto, influxd: Influxd) -> Running:
        running = spawn(self.command(self.config(broker, influxd)), self._log)
        wait_idle(running, "MQTT connect")
        return running

    @property
    def _log(self) -> Path:
        return self.workdir / f"{self.name}.log"


def _wait_subscribed(running: Running, workers: int) -> None:
    """Each worker logs `... subscribed to ...` once its session exists on the broker."""
    for _ in range(workers):
        if running.wait_line("subscribed to", _START_TIMEOUT_S) is None:
            raise RuntimeError(f"gateway never subscribed (exit {running.process.poll()})")


@dataclass(frozen=True, slots=True)
class PahoContender:
    """One of the paho-mqtt reference scripts (benchmarks/paho_count.py, benchmarks/naive.py)."""

    name: str
    module: str
    extra: tuple[str, ...]
    workdir: Path

    def command(self, broker: Mosquitto, *more: str) -> list[str]:
        return [
            sys.executable, "-m", self.module,
            "--host", broker.host, "--port", str(broker.port),
            "--client-id", f"bench-{self.name}", *self.extra, *more,
        ]  # fmt: skip

    def create_session(self, broker: Mosquitto, influxd: Influxd) -> None:
        subprocess.run(self.command(broker, "--create-session"), check=True, cwd=ROOT, timeout=60)

    def start(self, broker: Mosquitto, influxd: Influxd) -> Running:
        running = spawn(self.command(broker), self.workdir / f"{self.name}.log")
        wait_idle(running, "ready")
        return running
