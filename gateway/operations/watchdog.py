"""Is the pipeline alive? /healthz asks this, not just whether the event loop answers.

The health server runs outside the pipeline's task group, so it kept answering "ok" while the
intake task was wedged and nothing was written or acknowledged (issue 18). A watchdog knows
the pipeline's tasks and when each stage last made progress:

- a watched task that raised or was cancelled while the pipeline runs has died (its exception
  is named; a task that returned, such as a disabled profile watcher, is done, not dead);
- a stage that has work waiting (`busy()`) and has not reported progress for `stall_after_s`
  is stuck. A stage reports progress by calling `progress(name)`, or, where a call per event
  would cost on the hot path, through a `progress_mark()` the watchdog reads when asked (a
  counter: any change is progress).

The pipeline watches two stages. The writer has work while sealed batches wait for it. Intake
has work while the broker's bytes wait unread in the socket (`Ingest.unread_bytes`) and nothing
holds intake back: fewer than `max_pending` batches wait for the writer (a writer waiting for
InfluxDB or for space holds intake back through them). Intake runs synchronously in the socket
read callback, so there is no queue between reading and the message rules: unread bytes with
reading allowed mean reading stopped for a reason nobody reports.

What is a known, reported wait is not "stuck": the pipeline's `busy()` says False while
InfluxDB is down or the disk is full (those make /readyz fail with the reason, and a restart
would not help, so /healthz must not ask for one).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True)
class _Stage:
    busy: Callable[[], bool]
    progress_at_s: float
    progress_mark: Callable[[], object] | None = None
    last_mark: object = None
    was_busy: bool = False


class Watchdog:
    def __init__(
        self, stall_after_s: float = 60.0, clock_s: Callable[[], float] = time.monotonic
    ) -> None:
        self.stall_after_s = stall_after_s
        self._clock_s = clock_s
        self._tasks: list[asyncio.Task[None]] = []
        self._stages: dict[str, _Stage] = {}
        self.stopping = False  # set by the pipeline before it cancels its tasks

    def watch(self, task: asyncio.Task[None]) -> None:
        """A task that must run as long as the pipeline does."""
        self._tasks.append(task)

    def stage(
        self,
        name: str,
        busy: Callable[[], bool],
        progress_mark: Callable[[], object] | None = None,
    ) -> None:
        """A stage that must make progress while `busy()` (work waits for it): it calls
        `progress(name)`, or `progress_mark()` changes."""
        self._stages[name] = _Stage(
            busy, self._clock_s(), progress_mark, None if progress_mark is None else progress_mark()
        )

    def progress(self, name: str) -> None:
        self._stages[name].progress_at_s = self._clock_s()

    def failing(self) -> list[str]:
        """What is wrong, one line each; [] when the pipeline is alive."""
        if self.stopping:
            return []
        problems = [
            _ended(task)
            for task in self._tasks
            if task.done() and (task.cancelled() or task.exception() is not None)
        ]
        now = self._clock_s()
        for name, stage in self._stages.items():
            busy = stage.busy()
            if busy and not stage.was_busy:
                stage.progress_at_s = now  # idle counts as keeping up: stalled from here on
            if stage.progress_mark is not None:
                mark = stage.progress_mark()
                if mark != stage.last_mark:
                    stage.last_mark, stage.progress_at_s = mark, now
            stage.was_busy = busy
            if busy and now - stage.progress_at_s > self.stall_after_s:
                problems.append(
                    f"{name}: no progress for {now - stage.progress_at_s:.0f}s while work waits"
                )
        return problems


def _ended(task: asyncio.Task[None]) -> str:
    if task.cancelled():
        return f"task {task.get_name()}: cancelled while the pipeline runs"
    error = task.exception()
    return f"task {task.get_name()}: died ({type(error).__name__}: {error})"
