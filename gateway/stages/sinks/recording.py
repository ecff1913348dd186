"""A real Sink implementation that keeps what it was given: for unit tests and dry runs."""

from __future__ import annotations

from gateway.errors import SinkError


class RecordingSink:
    def __init__(self) -> None:
        self.writes: list[tuple[str | None, str | None, list[str]]] = []
        self.failures: list[SinkError] = []  # raised, one per write, before any success

    async def write(self, lines: list[str], database: str | None, rp: str | None) -> None:
        if self.failures:
            raise self.failures.pop(0)
        self.writes.append((database, rp, list(lines)))

    @property
    def lines(self) -> list[str]:
        return [line for _, _, lines in self.writes for line in lines]

    async def close(self) -> None:
        return None
