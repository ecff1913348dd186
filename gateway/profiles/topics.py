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
    # The literal levels before the first and after the last named segment, with their
    # slashes: a topic without both cannot match, and most topics a profile is asked about
    # are rejected on these two string tests instead of a split (resolving a new topic tries
    # every profile).
    prefix: str = field(init=False)
    suffix: str = field(init=False)

    def __post_init__(self) -> None:
        named = [index for index, (is_named, _) in enumerate(self.levels) if is_named]
        literal = [value for _, value in self.levels]
        prefix = suffix = ""
        if named:
            prefix = "".join(f"{value}/" for value in literal[: named[0]])
            suffix = "".join(f"/{value}" for value in literal[named[-1] + 1 :])
        object.__setattr__(self, "prefix", prefix)  # frozen: set once here
        object.__setattr__(self, "suffix", suffix)

    @property
    def segment_names(self) -> tuple[str, ...]:
        return tuple(value for named, value in self.levels if named)

    @property
    def subscription(self) -> str:
        """The MQTT subscription filter that receives every topic this pattern matches."""
        return "/".join("+" if named else value for named, value in self.levels)

    def match(self, topic: str) -> dict[str, str] | None:
        """The captured segments if `topic` matches, else None."""
        if not (topic.startswith(self.prefix) and topic.endswith(self.suffix)):
            return None
        parts = topic.split("/")
        if len(parts) != len(self.levels):
            return None
        captured: dict[str, str] = {}
        for part, (named, value) in zip(parts, self.levels, strict=True):
            if named:
                if not part:
                    return None
                captured[value] = part
            elif part != value:
                return None
        return captured

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
