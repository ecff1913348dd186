"""Where points go: InfluxDB (the real sink) and a recording sink for tests and the CLI."""

from __future__ import annotations

from typing import Protocol

from gateway.errors import SinkError


class Sink(Protocol):
    """Writes line protocol to one destination; raises SinkError when it was not accepted."""

    async def write(self, lines: list[str], database: str | None, rp: str | None) -> None: ...

    async def close(self) -> None: ...


class RefusedLinesError(SinkError):
    """The engine's answer named the lines it refused (never retryable).

    `refused` maps a line's index in the written list to the engine's reason; when
    `others_written` is true every other line was stored, else none was and the others must be
    written again. The delivery stage dead-letters exactly these lines, without a search."""

    def __init__(
        self, message: str, *, refused: dict[int, str], others_written: bool, status: int
    ) -> None:
        super().__init__(message, retryable=False, status=status)
        self.refused = refused
        self.others_written = others_written
