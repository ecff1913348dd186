"""Size/age batching that keeps each message's points together.

A message's points never straddle two batches, so a batch's acknowledgement tokens are exactly
the messages whose every point is in that batch (or that went to the dead-letter store with it).
"""

from __future__ import annotations

import time

from gateway.model import Batch, DeadLetter, Destination, ReceiptKey


class Batcher:
    """Accumulates the open batch; the pipeline seals it by size (here) or by age (its timer)."""

    def __init__(self, max_points: int, max_age_s: float) -> None:
        self.max_points = max_points
        self.max_age_s = max_age_s
        self.open = Batch()

    def add_points(
        self,
        destination: Destination,
        lines: list[str],
        domain: str,
        token: object,
        receipt: tuple[ReceiptKey, int] | None = None,
    ) -> Batch | None:
        """Add one message's lines; returns the sealed batch when it reached max_points."""
        batch = self.open
        if not batch.tokens and batch.empty:  # _opened, inline: this runs for every message
            batch.opened_at = time.monotonic()
        if receipt is not None:
            batch.receipts.append(receipt)
        bucket = batch.lines.get(destination)
        if bucket is None:
            batch.lines[destination] = lines
        else:
            bucket.extend(lines)
        count = len(lines)
        batch.points += count
        by_domain = batch.points_by_domain
        # A plain dict's get: Counter's += on a subclass costs twice as much per message.
        by_domain[domain] = by_domain.get(domain, 0) + count
        batch.tokens.append(token)
        return self.seal() if batch.points >= self.max_points else None

    def add_dead_letter(self, letter: DeadLetter, token: object) -> Batch | None:
        batch = self._opened()
        batch.dead_letters.append(letter)
        batch.tokens.append(token)
        # Dead letters are small; bound them like points so a flood of garbage still commits.
        return self.seal() if len(batch.dead_letters) >= self.max_points else None

    def add_acknowledgement(self, token: object) -> Batch | None:
        """A message that needs no storing (an availability message, a skipped retained
        reading): acknowledged with this batch, so PUBACKs keep the order of receipt."""
        batch = self._opened()
        batch.tokens.append(token)
        return self.seal() if len(batch.tokens) >= self.max_points else None

    def _opened(self) -> Batch:
        """The open batch; its age counts from its first message, not from the last seal."""
        batch = self.open
        if batch.empty:
            batch.opened_at = time.monotonic()
        return batch

    def seal_if_old(self, now: float) -> Batch | None:
        batch = self.open
        if not batch.empty and now - batch.opened_at >= self.max_age_s:
            return self.seal()
        return None

    def seal(self) -> Batch:
        batch, self.open = self.open, Batch()
        return batch
