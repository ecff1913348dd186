"""Load a directory of profile files, reject conflicts, and resolve topics to profiles.

Loading reads files (the only I/O of this package, done once at start-up or reload); resolving
is pure and cached per topic, because a town's topics are per device and repeat for ever.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from gateway.errors import ProfileError
from gateway.profiles.compile import CompiledProfile, compile_profile
from gateway.profiles.schema import ProfileSpec

PROFILE_SUFFIXES = (".yaml", ".yml")
_CACHE_LIMIT = 200_000  # distinct topics remembered; a town has tens of thousands of devices


@dataclass(frozen=True, slots=True)
class Resolved:
    profile: CompiledProfile
    segments: dict[str, str]


class ProfileRegistry:
    """An immutable set of compiled profiles with a per-topic resolution cache."""

    def __init__(self, profiles: Sequence[CompiledProfile]) -> None:
        check_overlaps(profiles)
        self.profiles: tuple[CompiledProfile, ...] = tuple(profiles)
        self._by_id = {profile.id: profile for profile in profiles}
        self._cache: dict[str, Resolved | None] = {}

    def get(self, profile_id: str) -> CompiledProfile | None:
        return self._by_id.get(profile_id)

    @property
    def subscriptions(self) -> list[str]:
        """MQTT filters that receive every topic some profile matches (deduplicated, sorted)."""
        return sorted({profile.pattern.subscription for profile in self.profiles})

    def resolve(self, topic: str) -> Resolved | None:
        try:
            return self._cache[topic]
        except KeyError:
            pass
        found = None
        for profile in self.profiles:
            segments = profile.pattern.match(topic)
            if segments is not None:
                found = Resolved(profile, segments)
                break
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[topic] = found
        return found


def check_overlaps(profiles: Sequence[CompiledProfile]) -> None:
    ids: dict[str, CompiledProfile] = {}
    for index, profile in enumerate(profiles):
        if profile.id in ids:
            raise ProfileError(
                [f"{profile.file}: id: {profile.id!r} is already used by {ids[profile.id].file}"]
            )
        ids[profile.id] = profile
        for other in profiles[:index]:
            if profile.pattern.overlaps(other.pattern):
                raise ProfileError(
                    [
                        f"{profile.file}: match.topic: {profile.pattern.text!r} can match "
                        f"the same topics as {other.pattern.text!r} in {other.file} "
                        f"(profile {other.id}); make one of the literal levels differ"
                    ],
                )


def profile_files(paths: Iterable[Path]) -> list[Path]:
    """Profile files under the given files/directories, in a stable order."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(
                sorted(p for p in path.rglob("*") if p.suffix in PROFILE_SUFFIXES and p.is_file())
            )
        elif path.exists():
            found.append(path)
        else:
            raise ProfileError([f"{path}: no such file or directory"])
    return found


def load_directory(directory: Path) -> ProfileRegistry:
    """Load every profile under `directory`; all problems of all files are reported at once."""
    if not directory.is_dir():
        raise ProfileError([f"{directory}: profiles directory does not exist ([profiles] dir)"])
    compiled, problems = load_files(profile_files([directory]))
    if problems:
        raise ProfileError(problems)
    if not compiled:
        raise ProfileError([f"{directory}: no profile files (*.yaml) found"])
    return ProfileRegistry(compiled)


def load_files(files: Sequence[Path]) -> tuple[list[CompiledProfile], list[str]]:
    compiled: list[CompiledProfile] = []
    problems: list[str] = []
    for file in files:
        try:
            compiled.append(load_file(file))
        except ProfileError as exc:
            problems.extend(exc.problems)
    return compiled, problems


def load_file(file: Path) -> CompiledProfile:
    """Parse, validate and compile one profile file; errors carry file:line and the field."""
    name = str(file)
    try:
        text = file.read_text(encoding="utf-8")
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError([f"{name}: cannot read: {exc}"]) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{name}:{mark.line + 1}" if mark else name
        raise ProfileError([f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}"]) from exc
    if not isinstance(data, dict):
        raise ProfileError([f"{name}:1: a profile is a YAML mapping (key: value lines)"])
    try:
        spec = ProfileSpec.model_validate(data)
    except ValidationError as exc:
        raise ProfileError(_describe(name, node, exc)) from None
    try:
        return compile_profile(spec, name)
    except ValueError as exc:
        raise ProfileError([f"{name}: {exc}"]) from None


def _describe(name: str, root: Any, exc: ValidationError) -> list[str]:
    problems = []
    for error in exc.errors(include_url=False):
        loc = [part for part in error["loc"] if not str(part).startswith("function-")]
        where = ".".join(str(part) for part in loc) or "(top level)"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key (see `gateway profiles schema` for the valid keys)"
        elif error["type"] == "missing":
            message = "required key is missing"
        problems.append(f"{name}:{_line_of(root, loc)}: {where}: {message}")
    return problems


def _line_of(node: Any, loc: Sequence[Any]) -> int:
    """The 1-based line of the deepest YAML node that `loc` reaches."""
    line = node.start_mark.line + 1 if node is not None else 1
    for part in loc:
        child = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == str(part):
                    child = key if value is None else value
                    line = key.start_mark.line + 1
                    break
        elif (
            isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value)
        ):
            child = node.value[part]
            line = child.start_mark.line + 1
        if child is None:
            break
        node = child
    return line
