"""TopicPattern.match rejects on its literal prefix and suffix before splitting: the same
answers as matching level by level, for any pattern and topic."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.profiles.topics import TopicPattern, parse_pattern

literals = st.sampled_from(["city", "water", "up", "a", "ab", "b", ""])
names = st.sampled_from(["district", "device_id", "x"])


@st.composite
def patterns(draw: st.DrawFn) -> TopicPattern:
    levels, used = [], set()
    for _ in range(draw(st.integers(min_value=1, max_value=5))):
        name = draw(names)
        if draw(st.booleans()) and name not in used:
            used.add(name)
            levels.append(f"{{{name}}}")
        else:
            levels.append(draw(literals) or "lit")
    return parse_pattern("/".join(levels))


def level_by_level(pattern: TopicPattern, topic: str) -> dict[str, str] | None:
    parts = topic.split("/")
    if len(parts) != len(pattern.levels):
        return None
    captured = {}
    for part, (named, value) in zip(parts, pattern.levels, strict=True):
        if named:
            if not part:
                return None
            captured[value] = part
        elif part != value:
            return None
    return captured


@settings(max_examples=2000)
@given(pattern=patterns(), levels=st.lists(literals, min_size=1, max_size=6))
def test_match_is_level_by_level(pattern: TopicPattern, levels: list[str]) -> None:
    topic = "/".join(levels)
    assert pattern.match(topic) == level_by_level(pattern, topic)


@settings(max_examples=500)
@given(pattern=patterns(), values=st.lists(literals, min_size=5, max_size=5))
def test_topics_built_from_the_pattern_match(pattern: TopicPattern, values: list[str]) -> None:
    """Topics of the pattern's own shape (the case the cheap rejection must never refuse)."""
    topic = "/".join(
        (values[index] or "v") if named else value
        for index, (named, value) in enumerate(pattern.levels)
    )
    assert pattern.match(topic) == level_by_level(pattern, topic)
    assert pattern.match(topic) is not None
