"""`gateway run --workers N`: N gateway processes sharing one MQTT v5 shared subscription.

Why processes: the hot path is Python on one event loop, so one gateway uses about one core.
Workers subscribe as `$share/<group>/<filter>` and the broker hands each message to one of
them. Every guarantee of a single gateway holds per worker (acknowledge after the durable
write, spool, dead letters), so it holds for the group: a message is acknowledged by the
worker that received it, and a redelivery goes to that worker's session again.

What each worker gets of its own, derived from the one configuration file:

- MQTT client id `<client_id>-w<i>`: its own persistent session on the broker;
- `[spool] dir` `<dir>/worker-<i>`: its own spool, dead letters and receive-time receipts
  (`gateway deadletter list --config` reads the top-level directory: point `[spool] dir` at
  a worker's subdirectory to inspect its dead letters);
- HTTP health port `<port>+i` (0 stays 0, any free port);
- self-metrics instance `<instance>-w<i>`, so the workers' figures stay apart in InfluxDB.

The supervisor validates the configuration and the profiles once, starts the workers,
forwards SIGTERM/SIGINT to them, and starts a worker again if it dies (its unacknowledged
messages wait in its session on the broker meanwhile).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from gateway.config import GatewaySettings

log = logging.getLogger(__name__)

_RESTART_DELAY_S = 1.0


def worker_settings(settings: GatewaySettings, index: int) -> GatewaySettings:
    """The settings of worker `index`: its own session, state directory, port and name."""
    mqtt = settings.mqtt.model_copy(
        update={
            "client_id": f"{settings.mqtt.client_id}-w{index}",
            "shared_group": settings.mqtt.shared_group or settings.mqtt.client_id,
        }
    )
    spool = settings.spool.model_copy(update={"dir": settings.spool.dir / f"worker-{index}"})
    port = settings.http.port + index if settings.http.port else 0
    http = settings.http.model_copy(update={"port": port})
    instance = f"{settings.monitoring.instance}-w{index}"
    monitoring = settings.monitoring.model_copy(update={"instance": instance})
    return settings.model_copy(
        update={"mqtt": mqtt, "spool": spool, "http": http, "monitoring": monitoring}
    )


def worker_command(config: Path | None, index: int) -> list[str]:
    config_args = ["--config", str(config)] if config is not None else []
    return [sys.executable, "-m", "gateway", "run", *config_args, "--worker", str(index)]


class Supervisor:
    """Starts the workers, restarts one that dies, and stops them all on SIGTERM/SIGINT."""

    def __init__(self, config: Path | None, workers: int) -> None:
        self._config = config
        self._workers = workers
        self._running: dict[int, subprocess.Popen[bytes]] = {}  # pid -> worker process
        self._index: dict[int, int] = {}  # pid -> worker index
        self._stopping = False

    def run(self) -> int:
        """Block until every worker has exited after a stop signal; the worst exit code."""
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        for index in range(self._workers):
            self._start(index)
        log.info("started %d workers on one shared subscription", self._workers)
        worst = 0
        while self._running:
            # os.waitpid is retried after a signal handler ran (PEP 475): no polling loop.
            pid, status = os.waitpid(-1, 0)
            process = self._running.pop(pid, None)
            if process is None:
                continue
            process.returncode = code = os.waitstatus_to_exitcode(status)
            index = self._index.pop(pid)
            if self._stopping:
                worst = max(worst, code)
                continue
            log.error("worker %d exited with %d; starting it again", index, code)
            time.sleep(_RESTART_DELAY_S)  # a worker that fails at once must not spin
            if not self._stopping:
                self._start(index)
        return worst

    def _start(self, index: int) -> None:
        process = subprocess.Popen(worker_command(self._config, index))  # noqa: S603 - our own interpreter and module
        self._running[process.pid] = process
        self._index[process.pid] = index

    def _stop(self, signum: int, _frame: FrameType | None) -> None:
        if not self._stopping:
            log.info("stopping %d workers (%s)", len(self._running), signal.Signals(signum).name)
        self._stopping = True
        for process in self._running.values():
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
