"""Where points go: InfluxDB (the real sink) and a recording sink for tests and the CLI."""

from __future__ import annotations

from typing import Protocol


class Sink(Protocol):
    """Writes line protocol to one destination; raises SinkError when it was not accepted."""

    async def write(self, lines: list[str], database: str | None, rp: str | None) -> None: ...

    async def close(self) -> None: ...
