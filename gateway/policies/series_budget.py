"""Per-profile series budgets: a mis-declared tag must not flood InfluxDB with series.

Every distinct (measurement, tag set) is a series, and InfluxDB keeps an index entry per series
for ever (1.x refuses writes past `max-series-per-database`, 1,000,000 by default). One tag that
carries a per-message value (a sequence number, a plate, a UUID) creates a series per message.
Each profile therefore has a budget, `output.max_series`, of distinct series it may create.

Semantics of `SeriesBudget.admit(profile_id, readings, drops)`:

- a point of a series the profile already has is always admitted;
- a point of a new series is admitted while the profile has fewer than its budget, and the
  series becomes known;
- otherwise the point is refused: ("(series)", "cardinality_exceeded") is appended to `drops`
  (so the pipeline counts it like any other drop), and the other points of the message are kept;
- when every point of a message is refused, `admit` raises DecodeError("cardinality_exceeded")
  so the caller dead-letters the message, exactly as normalize does for a message without a
  valid reading. Nothing is lost: the dead letter can be replayed after raising the budget.

The budget counts series seen since the gateway started; it does not know what InfluxDB already
stores, so after a restart the first series to arrive are admitted again. Memory is bounded by
the sum of the budgets: only admitted series are remembered. Pure and synchronous, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from gateway.errors import DecodeError
from gateway.model import Drop, Readings
from gateway.profiles.compile import CompiledProfile
from gateway.profiles.schema import DEFAULT_MAX_SERIES

CARDINALITY_EXCEEDED = "cardinality_exceeded"

SeriesKey = str
"""`measurement,tag=value,...` as in line protocol (escaped): the series as InfluxDB sees it.
Readings carry them; a str caches its hash, so the hot path's set lookup hashes nothing."""


class ProfileSeries:
    """The series one profile has created, up to its limit."""

    __slots__ = ("known", "limit", "profile_id")

    def __init__(self, profile_id: str, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"series budget of {profile_id!r} must be at least 1, got {limit}")
        self.profile_id = profile_id
        self.limit = limit
        self.known: set[SeriesKey] = set()

    def admit(self, readings: Readings, drops: list[Drop]) -> Readings:
        """`readings` itself when all are admitted (the usual case, no copy), else the
        admitted ones."""
        known = self.known
        for key in readings.series_keys:  # the usual case: every series known, nothing to do
            if key not in known:
                return self._admit(readings, drops)
        return readings

    def _admit(self, readings: Readings, drops: list[Drop]) -> Readings:
        known = self.known
        keys = readings.series_keys
        refused = 0
        for key in keys:
            if key in known:
                continue
            if len(known) < self.limit:
                known.add(key)
                continue
            refused += 1
        if not refused:
            return readings
        drops.extend([("(series)", CARDINALITY_EXCEEDED)] * refused)
        admitted = readings.only([key in known for key in keys])
        if not admitted.lines:
            raise DecodeError(
                CARDINALITY_EXCEEDED,
                f"profile {self.profile_id} already has {len(known)} series, its budget "
                "(output.max_series); a tag may carry a per-message value",
            )
        return admitted


class SeriesBudget:
    """Series budgets of all profiles, keyed by profile id."""

    def __init__(self, limits: Mapping[str, int], default_limit: int = DEFAULT_MAX_SERIES) -> None:
        self.default_limit = default_limit
        self._profiles = {pid: ProfileSeries(pid, limit) for pid, limit in limits.items()}

    @classmethod
    def for_profiles(cls, profiles: Iterable[CompiledProfile]) -> SeriesBudget:
        """Budgets from the profiles' `output.max_series`, e.g. of `registry.profiles`."""
        return cls(limits_of(profiles))

    def admit(self, profile_id: str, readings: Readings, drops: list[Drop]) -> Readings:
        """The readings to write; see the module docstring. Raises DecodeError if none
        remain."""
        return self._series(profile_id).admit(readings, drops)

    def _series(self, profile_id: str) -> ProfileSeries:
        try:
            return self._profiles[profile_id]
        except KeyError:  # a profile added by a reload before set_limits: the default budget
            series = self._profiles[profile_id] = ProfileSeries(profile_id, self.default_limit)
            return series

    def count(self, profile_id: str) -> int:
        """Distinct series the profile has created (for metrics)."""
        series = self._profiles.get(profile_id)
        return len(series.known) if series else 0

    def set_limits(self, limits: Mapping[str, int]) -> None:
        """New budgets after a profile reload (`limits_of(registry.profiles)`).

        Known series of the remaining profiles are kept: a profile whose new budget is below
        its known series keeps writing those and admits no new one. The series of removed
        profiles are forgotten.
        """
        profiles = {}
        for profile_id, limit in limits.items():
            series = ProfileSeries(profile_id, limit)
            old = self._profiles.get(profile_id)
            if old is not None:
                series.known = old.known
            profiles[profile_id] = series
        self._profiles = profiles


def limits_of(profiles: Iterable[CompiledProfile]) -> dict[str, int]:
    return {profile.id: profile.max_series for profile in profiles}
