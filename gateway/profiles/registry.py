"""Load a directory of profile files, reject conflicts, and resolve topics to profiles.

Loading reads files and `install_profile` writes one (the only I/O of this package, done at
start-up, reload or by a technician's command); resolving is pure and cached per topic, because
a town's topics are per device and repeat for ever.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import yaml
from pydantic import ValidationError

from gateway.errors import ConfigError, ProfileError
from gateway.profiles import yaml_limits
from gateway.profiles.compile import (
    CompiledLiveness,
    CompiledProfile,
    LocatedError,
    compile_profile,
)
from gateway.profiles.content import (
    ContentTest,
    content_needle,
    content_test,
    contents_disjoint,
)
from gateway.profiles.policy import (
    OFFLINE_POLICY,
    Destination,
    LoadPolicy,
    check_tenancy,
    ephemeral_policy,
)
from gateway.profiles.schema import (
    DevicesSpec,
    JavascriptDecodeSpec,
    ProfileSpec,
    cardinality_warnings,
)
from gateway.profiles.units import forget_unit_registry

PROFILE_SUFFIXES = (".yaml", ".yml")
_CACHE_LIMIT = 200_000  # distinct topics remembered; a town has tens of thousands of devices
# ... and their estimated size: an entry holds its topic, a Resolved and its segments dict
# (about 400 bytes and the topic twice over; measured: 200,000 topics of 40 characters took
# 90 MB), and a topic may be 64 KB ([limits] max_topic_bytes refuses long ones first, but the
# registry does not rely on it). The cache starts over at the bound: a miss costs a few us.
_CACHE_MAX_BYTES = 32 * 1024 * 1024
_ENTRY_BYTES = 400


@dataclass(frozen=True, slots=True)
class Resolved:
    profile: CompiledProfile
    segments: dict[str, str]


@dataclass(frozen=True, slots=True)
class _Choice:
    """Profiles sharing a topic (several device models on one LoRaWAN application), told
    apart by their match.content test on the message's JSON; the fallback takes the rest."""

    candidates: tuple[tuple[ContentTest, Resolved], ...]
    fallback: Resolved | None
    # Each candidate's content_needle, or None when one of them has none: then every payload
    # is parsed.
    needles: tuple[bytes, ...] | None = None

    def choose(self, payload: bytes) -> Resolved | None:
        needles = self.needles
        if (
            needles is not None
            and b"\\" not in payload
            and not any(needle in payload for needle in needles)
        ):
            return self.fallback  # no candidate can pass: skip parsing
        try:
            document = orjson.loads(payload)
        except orjson.JSONDecodeError:
            document = None  # not JSON: no content test passes
        for passes, resolved in self.candidates:
            if passes(document):
                return resolved
        return self.fallback


class ProfileRegistry:
    """An immutable set of compiled profiles with a per-topic resolution cache."""

    def __init__(
        self, profiles: Sequence[CompiledProfile], policy: LoadPolicy = OFFLINE_POLICY
    ) -> None:
        check_overlaps(profiles)
        self.profiles: tuple[CompiledProfile, ...] = tuple(profiles)
        self.policy = policy  # what they were loaded with; a hot reload loads with it again
        self._by_id = {profile.id: profile for profile in profiles}
        self._by_ends, self._any_ends = _index_by_ends(self.profiles)
        self._cache: dict[str, Resolved | _Choice | None] = {}
        self._cache_bytes = 0
        self._tests = {p.id: content_test(p.content) for p in profiles if p.content is not None}
        self._needles = {p.id: content_needle(p.content) for p in profiles if p.content is not None}
        self._availability = [
            (profile, profile.liveness, profile.liveness.availability)
            for profile in profiles
            if profile.liveness is not None and profile.liveness.availability is not None
        ]

    def get(self, profile_id: str) -> CompiledProfile | None:
        return self._by_id.get(profile_id)

    @property
    def subscriptions(self) -> list[str]:
        """MQTT filters that receive every topic some profile matches (deduplicated, sorted),
        its availability topic included."""
        filters = {profile.pattern.subscription for profile in self.profiles}
        filters.update(pattern.subscription for _, _, pattern in self._availability)
        return sorted(filters)

    def resolve_availability(
        self, topic: str
    ) -> tuple[CompiledProfile, CompiledLiveness, str] | None:
        """(profile, its liveness, device_id) when `topic` is a profile's availability topic.
        Only asked for topics `resolve` did not match: availability messages pay, not readings."""
        for profile, liveness, pattern in self._availability:
            segments = pattern.match(topic)
            if segments is not None:
                return profile, liveness, segments["device_id"]
        return None

    def resolve(self, topic: str, payload: bytes = b"") -> Resolved | None:
        """The profile for a message. `payload` is only read (parsed as JSON) when profiles
        with match.content share the topic; without it, such a topic resolves to its fallback.
        """
        try:
            found = self._cache[topic]
        except KeyError:
            found = self._find(topic)
            if len(self._cache) >= _CACHE_LIMIT or self._cache_bytes > _CACHE_MAX_BYTES:
                self._cache.clear()
                self._cache_bytes = 0
            self._cache[topic] = found
            self._cache_bytes += _ENTRY_BYTES + 2 * len(topic)
        if type(found) is _Choice:
            return found.choose(payload)
        return found  # type: ignore[return-value]  # not a _Choice: Resolved or None

    def _find(self, topic: str) -> Resolved | _Choice | None:
        # Runs once per new device topic (10,000 at a start with a backlog): only the profiles
        # whose first and last levels fit are tried, in a plain loop (a generator's frame and
        # next() cost ~0.5 us).
        ends = (topic.partition("/")[0], topic.rpartition("/")[2])
        profiles = self._by_ends.get(ends, self._any_ends)
        for index, profile in enumerate(profiles):
            segments = profile.pattern.match(topic)
            if segments is None:
                continue
            first = Resolved(profile, segments)
            if profile.content is None and not profile.fallback:
                # check_overlaps: no other profile can match this topic, so the others are
                # not tried.
                return first
            return self._choice(topic, first, profiles[index + 1 :])
        return None

    def _choice(self, topic: str, first: Resolved, later: tuple[CompiledProfile, ...]) -> _Choice:
        matching = [first]
        for profile in later:
            segments = profile.pattern.match(topic)
            if segments is not None:
                matching.append(Resolved(profile, segments))
        fallback = next((r for r in matching if r.profile.fallback), None)
        with_content = [r for r in matching if r.profile.content is not None]
        candidates = tuple((self._tests[r.profile.id], r) for r in with_content)
        needles = [self._needles[r.profile.id] for r in with_content]
        found = tuple(n for n in needles if n is not None)
        return _Choice(candidates, fallback, found if len(found) == len(needles) else None)


def _index_by_ends(
    profiles: tuple[CompiledProfile, ...],
) -> tuple[dict[tuple[str, str], tuple[CompiledProfile, ...]], tuple[CompiledProfile, ...]]:
    """The profiles that can match a topic, by the topic's (first level, last level), in their
    order; and those whose first or last level is a named segment (they can match any topic,
    so they are in every entry too)."""
    anywhere = tuple(profile for profile in profiles if profile.pattern.ends is None)
    by_ends: dict[tuple[str, str], tuple[CompiledProfile, ...]] = {}
    for profile in profiles:
        ends = profile.pattern.ends
        if ends is not None and ends not in by_ends:
            by_ends[ends] = tuple(p for p in profiles if p.pattern.ends in (ends, None))
    return by_ends, anywhere


def content_clash(  # noqa: PLR0911  # one answer per combination of the two match blocks
    profile: CompiledProfile, other: CompiledProfile
) -> str | None:
    """Why two profiles on overlapping topics could both take a message; None when their
    match.content tests (or one fallback) keep them apart."""
    if profile.fallback and other.fallback:
        return "both are match.fallback; keep one catch-all per topic"
    if profile.fallback or other.fallback:
        plain = other if profile.fallback else profile
        if plain.content is not None:
            return None
        return (
            f"profile {plain.id} has no match.content, so it would take every message the "
            "fallback is for; give it a content test"
        )
    if profile.content is None and other.content is None:
        return "make one of the literal levels differ"
    if profile.content is None or other.content is None:
        plain = profile if profile.content is None else other
        return (
            f"profile {plain.id} has no match.content test: give both profiles one (several "
            "models on one topic), or make one of the literal levels differ"
        )
    if contents_disjoint(profile.content, other.content):
        return None
    return (
        "their match.content tests can both pass on one message; test the same path for "
        "different values"
    )


def check_overlaps(profiles: Sequence[CompiledProfile]) -> None:
    """Raise ProfileError listing every duplicate id and every pair of overlapping patterns."""
    problems = []
    ids: dict[str, CompiledProfile] = {}
    for index, profile in enumerate(profiles):
        if profile.id in ids:
            first = ids[profile.id]
            problems.append(
                f"{profile.file}:{profile.id_line}: id: {profile.id!r} is already used by "
                f"{first.file}:{first.id_line}; each profile needs its own id"
            )
        ids.setdefault(profile.id, profile)
        problems.extend(
            f"{profile.file}:{profile.topic_line}: match.topic: {profile.pattern.text!r} can "
            f"match the same topics as {other.pattern.text!r} in {other.file}:{other.topic_line} "
            f"(profile {other.id}); {clash}"
            for other in profiles[:index]
            if profile.pattern.overlaps(other.pattern)
            and (clash := content_clash(profile, other)) is not None
        )
        problems.extend(_availability_overlaps(profile, profiles[:index]))
    if problems:
        raise ProfileError(problems)


def _availability_overlaps(
    profile: CompiledProfile, earlier: Sequence[CompiledProfile]
) -> Iterator[str]:
    """An availability topic that another profile's readings (or availability) could use would
    send one kind of message to the other's handler; the profile's own pair is checked by the
    schema."""
    mine = profile.liveness.availability if profile.liveness else None
    for other in earlier:
        theirs = other.liveness.availability if other.liveness else None
        clashes = [
            (mine, other.pattern, "liveness.availability_topic"),
            (profile.pattern, theirs, "match.topic"),
            (mine, theirs, "liveness.availability_topic"),
        ]
        for first, second, what in clashes:
            if first is not None and second is not None and first.overlaps(second):
                yield (
                    f"{profile.file}:{profile.topic_line}: {what}: {first.text!r} can match the "
                    f"same topics as {second.text!r} of profile {other.id} in {other.file}; "
                    "availability topics need a level of their own (e.g. .../status)"
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


def load_directory(directory: Path, policy: LoadPolicy | None = None) -> ProfileRegistry:
    """Load every profile under `directory`; all problems of all files are reported at once.

    `policy` carries the configuration's tenants and hash key (gateway/policies/tenants.py builds
    it); without one, tenants are not checked and hashes use a random key of this process."""
    policy = policy or ephemeral_policy()
    if not directory.is_dir():
        raise ProfileError([f"{directory}: profiles directory does not exist ([profiles] dir)"])
    try:
        compiled, problems = load_files(profile_files([directory]), policy)
    finally:
        forget_unit_registry()  # ~4 MB the running gateway does not need (see units.py)
    problems.extend(check_tenancy([profile_destination(p) for p in compiled], policy))
    if problems:
        raise ProfileError(problems)
    if not compiled:
        raise ProfileError([f"{directory}: no profile files (*.yaml) found"])
    return ProfileRegistry(compiled, policy)


def profile_destination(profile: CompiledProfile) -> Destination:
    return Destination(
        profile.file,
        profile.tenant,
        profile.database,
        profile.retention_policy,
        profile.measurement,
        frozenset(tag.name for tag in profile.tags),
        frozenset(field.name for field in profile.fields),
    )


def load_files(
    files: Sequence[Path], policy: LoadPolicy = OFFLINE_POLICY
) -> tuple[list[CompiledProfile], list[str]]:
    compiled: list[CompiledProfile] = []
    problems: list[str] = []
    for file in files:
        try:
            compiled.append(load_file(file, policy))
        except ProfileError as exc:
            problems.extend(exc.problems)
    return compiled, problems


def _unexpected(name: str, exc: Exception) -> ProfileError:
    """Any other failure while loading a file is still that file's problem, reported as one
    line: a hot reload keeps the previous profiles instead of dying (a RecursionError from a
    validator, a MemoryError) and the CLI prints no traceback."""
    return ProfileError([f"{name}: cannot load: {type(exc).__name__}: {exc}"])


def load_file(file: Path, policy: LoadPolicy = OFFLINE_POLICY) -> CompiledProfile:
    """Parse, validate and compile one profile file; errors carry file:line and the field."""
    try:
        text = _read_profile_text(file)
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError([f"{file}: cannot read: {exc}"]) from exc
    return load_text(text, str(file), policy)


def _read_profile_text(file: Path) -> str:
    """The file's text; an error without reading more than the size limit allows."""
    return read_limited(file, yaml_limits.MAX_FILE_BYTES)


MAX_KNOWN_DEVICES_BYTES = 16 * 1024 * 1024  # a million device ids
MAX_CODEC_BYTES = 4 * 1024 * 1024


def read_limited(file: Path, max_bytes: int) -> str:
    """The text of a regular file of at most `max_bytes`; OSError otherwise.

    Files next to the profiles are data too: a named pipe in their place would block the
    loader for ever (a hot reload, and with it the process's shutdown, which waits for the
    loading thread), and a huge file would fill memory."""
    fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK)  # opening a FIFO must not wait either
    with os.fdopen(fd, "rb") as stream:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError("not a regular file")
        raw = stream.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise OSError(f"larger than {max_bytes} bytes; a profile's file is not that large")
    return raw.decode("utf-8")


def load_text(text: str, name: str, policy: LoadPolicy = OFFLINE_POLICY) -> CompiledProfile:
    """Parse, validate and compile a profile's text; `name` is the file named in errors.

    Every failure is a ProfileError naming the file (see `_unexpected`)."""
    try:
        return _load_text(text, name, policy)
    except ProfileError:
        raise
    except Exception as exc:  # a file's content must never crash the loader
        raise _unexpected(name, exc) from exc


def _load_text(text: str, name: str, policy: LoadPolicy) -> CompiledProfile:
    try:
        node, data = yaml_limits.parse(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{name}:{mark.line + 1}" if mark else name
        raise ProfileError([f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}"]) from exc
    if not isinstance(data, dict):
        raise ProfileError([f"{name}:1: a profile is a YAML mapping (key: value lines)"])
    repeated = _repeated_keys(node, ())
    if repeated:
        raise ProfileError(
            [
                f"{name}:{line}: {where}: key appears twice in the same block; YAML would "
                "silently keep only the last one"
                for where, line in repeated
            ]
        )
    try:
        spec = ProfileSpec.model_validate(data)
    except ValidationError as exc:
        raise ProfileError(_describe(name, node, exc)) from None
    warnings = tuple(
        f"{name}:{_line_of(node, loc)}: {'.'.join(loc)}: {message}"
        for loc, message in cardinality_warnings(spec)
    )
    try:
        if isinstance(spec.decode, JavascriptDecodeSpec):
            load_codec(spec.decode, Path(name).parent)
        return compile_profile(
            spec,
            name,
            id_line=_line_of(node, ("id",)),
            topic_line=_line_of(node, ("match", "topic")),
            warnings=warnings,
            hash_key=policy.hash_key,
            known_devices=_known_devices(spec.devices, Path(name).parent),
        )
    except LocatedError as exc:
        where = ".".join(exc.loc)
        raise ProfileError([f"{name}:{_line_of(node, exc.loc)}: {where}: {exc}"]) from None


def load_codec(spec: JavascriptDecodeSpec, folder: Path) -> None:
    """Read the vendor codec next to the profile into the spec and compile it once, so a
    codec that does not load stops the profile now, not at its first message."""
    # The JS engine lives in the decode stage (its only module); compiling the codec belongs to
    # loading the profile, as pint's unit checks do, hence this one import against the flow.
    from gateway.stages.codec import CodecLimits, CodecLoadError, JavascriptCodec  # noqa: PLC0415  # see above

    path = folder / spec.script
    if path.suffix != CODEC_SUFFIX:
        raise LocatedError(("decode", "script"), f"{spec.script!r}: the file name must end in .js")
    try:
        source = read_limited(path, MAX_CODEC_BYTES)
    except (OSError, UnicodeDecodeError) as exc:
        raise LocatedError(("decode", "script"), f"cannot read {path}: {exc}") from None
    try:
        JavascriptCodec(
            source, str(path), CodecLimits(spec.timeout_ms, spec.memory_mb, spec.stack_kb)
        )
    except CodecLoadError as exc:
        raise LocatedError(("decode", "script"), str(exc)) from None
    spec.attach_source(source)


CODEC_SUFFIX = ".js"
KNOWN_DEVICES_SUFFIX = ".txt"
"""Known-device files end in .txt, so the profile loader never mistakes them for profiles."""


def _known_devices(spec: DevicesSpec, folder: Path) -> frozenset[str] | None:
    """The device ids that may report, or None when any may (auto_register: true)."""
    if spec.auto_register:
        return None
    known = set(spec.known)
    if spec.known_file is not None:
        path = folder / spec.known_file
        if path.suffix != KNOWN_DEVICES_SUFFIX:
            raise LocatedError(
                ("devices", "known_file"), f"{spec.known_file!r}: the file name must end in .txt"
            )
        try:
            text = read_limited(path, MAX_KNOWN_DEVICES_BYTES)
        except (OSError, UnicodeDecodeError) as exc:
            raise LocatedError(("devices", "known_file"), f"cannot read {path}: {exc}") from None
        known.update(_device_lines(text))
    return frozenset(known)


def _device_lines(text: str) -> list[str]:
    """One device id per line; blank lines and # comments ignored."""
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return [line for line in lines if line]


def _repeated_keys(node: Any, path: tuple[str, ...]) -> list[tuple[str, int]]:
    """(dotted key, line) of every key that repeats within one YAML mapping, depth first."""
    found: list[tuple[str, int]] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            where = (*path, str(key.value))
            if where[-1] in seen:
                found.append((".".join(where), key.start_mark.line + 1))
            seen.add(where[-1])
            found.extend(_repeated_keys(value, where))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            found.extend(_repeated_keys(item, (*path, str(index))))
    return found


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


@dataclass(frozen=True, slots=True)
class Installed:
    profile: CompiledProfile
    path: Path
    action: str  # "installed", "replaced" or "already in place"
    profile_count: int  # profiles in the directory, the new one included


def install_profile(source: Path, directory: Path, *, replace: bool = False) -> Installed:
    """Check `source` against the profiles of `directory`, then copy it to <domain>/<name>.

    Raises ProfileError (file:line: field: message) when the profile is invalid, conflicts with
    another one (id, topic) or would overwrite a file of another profile id without `replace`;
    ConfigError when the directory is unusable. The copy is atomic: a reader (a gateway
    reloading) sees the old file or the new one, never half of one.
    """
    if source.suffix not in PROFILE_SUFFIXES:
        raise ProfileError([f"{source}: profile file names end in .yaml or .yml"])
    if not directory.is_dir():
        raise ConfigError(f"{directory}: profiles directory does not exist")
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError([f"{source}: cannot read: {exc}"]) from exc
    new = load_text(text, str(source))
    target = directory / new.domain / source.name
    _refuse_misplaced(source, target, directory)
    _refuse_foreign_target(target, new, replace=replace)
    others = [f for f in profile_files([directory]) if not _same_file(f, target)]
    existing, problems = load_files(others)
    if problems:
        raise ProfileError([*problems, f"{directory}: fix these profiles before adding one"])
    check_overlaps([*existing, new])
    if _same_file(source, target):
        action = "already in place"
    else:
        action = "replaced" if target.exists() else "installed"
        # The device list first: a reload that sees the new profile must find its list too.
        for companion in _companion_files(text):  # device list, codec
            content = (source.parent / companion).read_text(encoding="utf-8")
            _write_atomically(target.parent / companion, content)
        _write_atomically(target, text)
    return Installed(new, target, action, len(existing) + 1)


def _companion_files(text: str) -> list[str]:
    """`devices.known_file` and `decode.script` of a profile text that already loaded cleanly."""
    data = yaml.safe_load(text)
    found = [(data.get("devices") or {}).get("known_file"), data["decode"].get("script")]
    return [str(name) for name in found if name is not None]


def _same_file(a: Path, b: Path) -> bool:
    return a.resolve() == b.resolve()


def _refuse_misplaced(source: Path, target: Path, directory: Path) -> None:
    """A copy from inside the directory to another place would leave the profile there twice."""
    if source.resolve().is_relative_to(directory.resolve()) and not _same_file(source, target):
        raise ProfileError(
            [f"{source}: already inside {directory}; move it to {target} instead of adding it"]
        )


def _refuse_foreign_target(target: Path, new: CompiledProfile, *, replace: bool) -> None:
    if replace or not target.exists():
        return
    try:
        old_id = yaml_limits.parse(_read_profile_text(target))[1].get("id")
    except (OSError, UnicodeDecodeError, yaml.YAMLError, AttributeError):
        old_id = None  # unreadable: certainly not the same profile
    if old_id != new.id:
        raise ProfileError(
            [
                f"{new.file}:{new.id_line}: id: {target} already holds profile {old_id!r}, "
                f"not {new.id!r}; rename the file, or pass --replace to overwrite it"
            ]
        )


def _write_atomically(target: Path, text: str) -> None:
    """Temp file in the same directory, fsync, rename over the target, fsync the directory."""
    try:
        target.parent.mkdir(exist_ok=True)  # a domain's first profile
        mode = target.stat().st_mode & 0o777 if target.exists() else 0o644
        # The .tmp suffix keeps a half-written file out of any loader's *.yaml glob.
        fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temp, mode)  # mkstemp creates 0600; the gateway may run as another user
            os.replace(temp, target)
        finally:
            Path(temp).unlink(missing_ok=True)  # only left after a failure
        directory_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(directory_fd)  # make the rename itself durable
        finally:
            os.close(directory_fd)
    except OSError as exc:
        raise ConfigError(f"{target}: cannot install: {exc}") from exc
