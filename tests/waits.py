"""Waiting for events, never for time: poll a predicate until it holds or a deadline passes.

A fixed sleep is either too short on a loaded machine (a flaky test) or too long everywhere
(a slow suite). These wait exactly as long as the event takes, and a missed deadline fails
with what was awaited, so the failure says which event never came.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

# Between checks: short against the events awaited. Out of process (a server's /metrics, a
# log file, a database query) each check costs the process under test some work, so fewer.
POLL_S = 0.1
ASYNC_POLL_S = 0.01  # in process: a look at a counter, and the events take milliseconds


def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Block until `predicate()` is true; AssertionError naming `what` after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s:g} s: {what}")
        time.sleep(POLL_S)


async def wait_for_async(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    """`wait_for` for code on the event loop: the gateway under test runs while this polls."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"not within {timeout_s:g} s: {what}")
        await asyncio.sleep(ASYNC_POLL_S)
