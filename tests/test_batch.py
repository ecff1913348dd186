"""Size and age batching, with the clock passed in: no test here waits for a batch to age.

The Batcher stamps a batch with `time.monotonic()` when its first message arrives
(`Batch.opened_at`) and seals it by age only when asked, `seal_if_old(now)`: the pipeline's
timer passes the real monotonic clock, these tests pass times relative to `opened_at`.
"""

from __future__ import annotations

from gateway.model import DeadLetter
from gateway.stages.batch import Batcher

MAX_AGE_S = 1.0
DEFAULT = (None, None)


def test_a_batch_is_sealed_by_size_without_splitting_a_message() -> None:
    batcher = Batcher(max_points=3, max_age_s=MAX_AGE_S)
    assert batcher.add_points(DEFAULT, ["a 1", "a 2"], "water", "m1") is None
    sealed = batcher.add_points(DEFAULT, ["b 1", "b 2"], "water", "m2")
    assert sealed is not None
    assert sealed.lines == {DEFAULT: ["a 1", "a 2", "b 1", "b 2"]}  # 4 > 3: m2 stays whole
    assert sealed.tokens == ["m1", "m2"]
    assert sealed.points_by_domain == {"water": 4}
    assert batcher.open.empty


def test_a_batch_is_sealed_once_its_first_message_is_max_age_old() -> None:
    batcher = Batcher(max_points=1000, max_age_s=MAX_AGE_S)
    batcher.add_points(DEFAULT, ["a 1"], "water", "m1")
    opened = batcher.open.opened_at
    batcher.add_points(DEFAULT, ["a 2"], "water", "m2")  # a later message does not reset it
    assert batcher.open.opened_at == opened
    assert batcher.seal_if_old(opened + MAX_AGE_S * 0.99) is None
    sealed = batcher.seal_if_old(opened + MAX_AGE_S)
    assert sealed is not None
    assert sealed.tokens == ["m1", "m2"]
    assert batcher.seal_if_old(opened + 10 * MAX_AGE_S) is None  # nothing open: nothing sealed


def test_the_age_counts_from_the_first_message_after_a_seal() -> None:
    batcher = Batcher(max_points=1000, max_age_s=MAX_AGE_S)
    batcher.add_points(DEFAULT, ["a 1"], "water", "m1")
    first = batcher.open.opened_at
    assert batcher.seal_if_old(first + MAX_AGE_S) is not None
    batcher.add_dead_letter(DeadLetter(1, "t/x", b"?", "invalid_json"), "m2")
    second = batcher.open.opened_at
    assert second >= first
    assert batcher.seal_if_old(second + MAX_AGE_S * 0.5) is None
    sealed = batcher.seal_if_old(second + MAX_AGE_S)
    assert sealed is not None
    assert sealed.tokens == ["m2"]
    assert len(sealed.dead_letters) == 1
