"""Topic patterns with named segments, e.g. `city/water/{district}/{device_id}/telemetry`.

A `{name}` segment matches exactly one topic level and captures it; every other segment is a
literal. Pure functions: no I/O, no asyncio.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_NAMED = re.compile(r"^\{([a-z_][a-z0-9_]*)\}$")
_MQTT_WILDCARDS = ("+", "#")


@dataclass(frozen=True, slots=True)
class TopicPattern:
    """A parsed pattern: per level either a literal or the name of a captured segment."""

    text: str
    levels: tuple[tuple[bool, str], ...]  # (is_named, literal text or segment name)
    # The pattern as a regular expression, one named group per named segment: a match is
    # one C call (~0.3 us) instead of a split and a loop over the levels (~0.8 us), once per
    # profile tried for every new device topic.
    _regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        regex = "/".join(
            f"(?P<{value}>[^/]+)" if named else re.escape(value) for named, value in self.levels
        )
        object.__setattr__(self, "_regex", re.compile(regex))  # frozen: set once here

    @property
    def ends(self) -> tuple[str, str] | None:
        """The literal first and last levels, which every matching topic has; None when
        either is a named segment."""
        (first_named, first), (last_named, last) = self.levels[0], self.levels[-1]
        return None if first_named or last_named else (first, last)

    @property
    def segment_names(self) -> tuple[str, ...]:
        return tuple(value for named, value in self.levels if named)

    @property
    def subscription(self) -> str:
        """The MQTT subscription filter that receives every topic this pattern matches."""
        return "/".join("+" if named else value for named, value in self.levels)

    def match(self, topic: str) -> dict[str, str] | None:
        """The captured segments if `topic` matches, else None."""
        found = self._regex.fullmatch(topic)
        return None if found is None else found.groupdict()

    def overlaps(self, other: TopicPattern) -> bool:
        """True when some topic could match both patterns."""
        if len(self.levels) != len(other.levels):
            return False
        return all(
            a_named or b_named or a == b
            for (a_named, a), (b_named, b) in zip(self.levels, other.levels, strict=True)
        )


def parse_pattern(text: str) -> TopicPattern:
    """Parse a pattern, or raise ValueError saying what is wrong with it."""
    if not text or text.startswith("$"):
        raise ValueError("a topic pattern must be non-empty and not start with '$'")
    levels: list[tuple[bool, str]] = []
    seen: set[str] = set()
    for level in text.split("/"):
        named = _NAMED.match(level)
        if named:
            name = named.group(1)
            if name in seen:
                raise ValueError(f"segment name {{{name}}} appears twice")
            seen.add(name)
            levels.append((True, name))
        elif any(ch in level for ch in "{}") or any(w in level for w in _MQTT_WILDCARDS):
            raise ValueError(
                f"level {level!r} is neither a literal nor a named segment like {{device_id}} "
                "(MQTT wildcards + and # are written as named segments)"
            )
        else:
            levels.append((False, level))
    return TopicPattern(text=text, levels=tuple(levels))
