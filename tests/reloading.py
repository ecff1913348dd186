"""An in-process gateway over a copy of the shipped profiles, reloading them every 50 ms: the
hot-reload tests edit the copy while it runs (tests/test_reload.py, test_hostile_profiles.py)."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from gateway.config import GatewaySettings
from gateway.pipeline import Gateway
from gateway.profiles.registry import load_directory
from tests.fakes import QueueIngest, SwitchableSink

PROFILES = Path(__file__).resolve().parent.parent / "device_profiles"


@dataclass(frozen=True, slots=True)
class ReloadingGateway:
    gateway: Gateway
    profiles: Path  # the copy it watches
    sink: SwitchableSink
    ingest: QueueIngest


@asynccontextmanager
async def reloading_gateway(
    tmp_path: Path, stop_timeout_s: float = 10.0
) -> AsyncIterator[ReloadingGateway]:
    """Runs while the block runs; leaving the block stops it the way SIGTERM does. The stop
    drains: every message fed before it is handled when the block is left."""
    profiles = tmp_path / "profiles"
    shutil.copytree(PROFILES, profiles)
    settings = GatewaySettings(
        batch={"max_points": 1000, "max_age_s": 0.05},
        spool={"dir": str(tmp_path / "state")},
        profiles={"dir": str(profiles), "reload_interval_s": 0.05},
    )
    sink, ingest = SwitchableSink(), QueueIngest()
    gateway = Gateway(settings, load_directory(profiles), sink=sink, ingest=ingest)
    stop = asyncio.Event()
    task = asyncio.create_task(gateway.run(stop))
    try:
        yield ReloadingGateway(gateway, profiles, sink, ingest)
    finally:
        stop.set()
        await asyncio.wait_for(task, stop_timeout_s)
