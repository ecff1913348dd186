"""Thin typer commands over the library. User errors print one clear message, no traceback."""

from __future__ import annotations

import asyncio
import base64
import binascii
import gc
import json
import signal
import sys
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from gateway.config import GatewaySettings, load_settings
from gateway.errors import ConfigError, GatewayError, ProfileError, SinkError
from gateway.model import Drop, FieldValue, Message, Point
from gateway.policies.tenants import profile_policy, warn_about_ephemeral_key
from gateway.process import Accepted, AckOnly, MessageLimits, MessageRules, Outcome, Refused
from gateway.profiles.compile import CompiledProfile
from gateway.profiles.policy import OFFLINE_POLICY, check_tenancy
from gateway.profiles.registry import (
    PROFILE_SUFFIXES,
    ProfileRegistry,
    install_profile,
    load_directory,
    load_file,
    load_files,
    profile_destination,
    profile_files,
)
from gateway.profiles.schema import ProfileSpec
from gateway.stages.deadletter import DEAD_LETTER_FILE, DeadLetterStore
from gateway.stages.lineprotocol import decode_line
from gateway.stages.normalize import generated_source, source_name

# Plain tracebacks: rich's boxed ones mangle journald output and our user errors never reach it.
app = typer.Typer(
    no_args_is_help=True, add_completion=False, help=__doc__, pretty_exceptions_enable=False
)
profiles_app = typer.Typer(no_args_is_help=True, help="Write, check and try device profiles.")
app.add_typer(profiles_app, name="profiles")
deadletter_app = typer.Typer(no_args_is_help=True, help="Inspect messages the gateway refused.")
app.add_typer(deadletter_app, name="deadletter")
dashboards_app = typer.Typer(no_args_is_help=True, help="Grafana dashboards and alert rules.")
app.add_typer(dashboards_app, name="dashboards")
config_app = typer.Typer(no_args_is_help=True, help="The configuration file's reference.")
app.add_typer(config_app, name="config")

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="gateway.toml (env GATEWAY_* overrides it)")
]


def main() -> None:
    try:
        app()
    except GatewayError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)


def _keep_numpy_out() -> None:
    """Hide numpy from pint in the long-running gateway process.

    pint imports numpy whenever it is installed (for array quantities), and the gateway uses
    pint only to compute each unit's factor once, from plain floats, at profile load. numpy
    is no production dependency (`pip install .` does not bring it; the dev extra's
    matplotlib does), yet where it is installed it added 10.8 MB to the gateway's RSS
    (measured: 70.3 -> 59.5 MB after loading the shipped profiles, Speed issue). A None entry
    in sys.modules makes `import numpy` raise ImportError, pint's own test for its absence.
    Only `gateway run` does this: other commands and the tests keep numpy."""
    if "numpy" not in sys.modules:
        sys.modules["numpy"] = None  # type: ignore[assignment]  # see above


_M_MMAP_THRESHOLD = -3  # glibc malloc.h
_MMAP_THRESHOLD_BYTES = 128 * 1024  # glibc's initial value


def _fixed_mmap_threshold() -> None:
    """Keep large blocks (a batch's HTTP body, ~0.7 MB; socket reads of 256 kB) out of the heap.

    glibc serves blocks above the mmap threshold with their own mapping and returns them on
    free, but raises the threshold to the size of each such block freed, up to 32 MB; from
    then on those blocks come from the heap, where freed space is kept and fragments. Fixing
    the threshold (mallopt disables the adjustment) lowered the drain's peak RSS by ~2 MB
    (78-81 against 80-83 MB in A/B runs of the benchmark, Speed issue). Not glibc (musl,
    macOS): nothing to do."""
    import ctypes  # noqa: PLC0415  # `gateway run` only

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_BYTES)


@app.command()
def run(
    config: ConfigOption = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Gateway processes sharing one MQTT v5 shared subscription ($share/<group>/...; "
            "group: [mqtt] shared_group, else the client id), each with its own session, "
            "state directory <spool dir>/worker-<i> and health port <port>+i",
        ),
    ] = 1,
    worker: Annotated[int | None, typer.Option(hidden=True, help="Run as worker I")] = None,
) -> None:
    """Run the gateway until SIGTERM or Ctrl-C."""
    _keep_numpy_out()
    _fixed_mmap_threshold()
    from gateway.operations import logs  # noqa: PLC0415  # keep `gateway --help` fast
    from gateway.operations.doctor import state_dir_problem  # noqa: PLC0415  # imported when the command runs: `gateway --help` stays fast
    from gateway.pipeline import Gateway  # noqa: PLC0415  # imported when the command runs: `gateway --help` stays fast
    from gateway.workers import Supervisor, worker_settings  # noqa: PLC0415  # imported when the command runs: `gateway --help` stays fast

    settings = load_settings(config)
    if worker is not None:
        settings = worker_settings(settings, worker)
    logs.configure(settings.log.level)
    registry = _load_for(settings)
    # Loading leaves cyclic garbage, pint's unit registry above all (gateway/profiles/units.py):
    # collected now, its memory is reused by the drain instead of adding to the peak, because
    # at the start of a drain a full collection may not come for a long while.
    gc.collect()
    state_problem = state_dir_problem(settings.spool.dir)
    if state_problem is not None:
        raise ConfigError(
            f"[spool] dir {settings.spool.dir}: {state_problem}; the spool and dead letters "
            "live there: make it writable for the gateway's user (`gateway doctor` says how)"
        )
    _warn_about_loss(settings)
    warn_about_ephemeral_key(
        registry.policy, [p.id for p in registry.profiles if p.hashes_private_data]
    )
    if workers > 1 and worker is None:  # checked above, once, before any worker starts
        raise typer.Exit(Supervisor(config, workers).run())

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await Gateway(settings, registry).run(stop)

    asyncio.run(serve())


def _load_for(settings: GatewaySettings) -> ProfileRegistry:
    """The profiles as the running gateway loads them: with its tenants and hash key."""
    return load_directory(settings.profiles.dir, profile_policy(settings))


def _warn_about_loss(settings: GatewaySettings) -> None:
    import logging  # noqa: PLC0415  # imported when the command runs: `gateway --help` stays fast

    log = logging.getLogger("gateway")
    if settings.mqtt.qos == 0:
        log.warning("mqtt.qos = 0: the broker does not redeliver, readings CAN BE LOST")
    if settings.mqtt.session_expiry_s == 0:
        log.warning("mqtt.session_expiry_s = 0: readings sent while the gateway is down ARE LOST")


@app.command("check-config")
def check_config(config: ConfigOption = None) -> None:
    """Validate the configuration and every profile exactly as start-up does."""
    settings = load_settings(config)
    registry = _load_for(settings)
    typer.echo(f"configuration ok; {len(registry.profiles)} profiles from {settings.profiles.dir}")


@app.command()
def doctor(config: ConfigOption = None) -> None:
    """Check the configuration, profiles, broker (a real login), InfluxDB (credentials, write
    permission, databases) and the state directory (writable, free disk): one verdict per check
    with the fix. Exit 1 if any check fails."""
    from gateway.operations.doctor import diagnose, format_verdict  # noqa: PLC0415  # keep `--help` fast

    failed = 0
    for verdict in diagnose(config):
        typer.echo(format_verdict(verdict))
        failed += verdict.status == "FAIL"
    if failed:
        typer.echo(f"{failed} check(s) failed", err=True)
        raise typer.Exit(1)
    typer.echo("all checks passed")


@app.command()
def status(
    config: ConfigOption = None,
    url: Annotated[
        str | None,
        typer.Option(
            help="The gateway's health endpoint, e.g. http://127.0.0.1:9464 "
            "(default: [http] listen and port of --config)"
        ),
    ] = None,
    stale: Annotated[int, typer.Option(help="How many stale devices to list")] = 10,
) -> None:
    """A live summary of a running gateway: ready or not and why, MQTT, messages, points, dead
    letters, InfluxDB, spool, stale devices. Exit 1 when the gateway is not ready."""
    from gateway.operations.status import format_status, read_status, url_from_settings  # noqa: PLC0415  # imported when the command runs: `gateway --help` stays fast

    summary = read_status(url or url_from_settings(load_settings(config).http), max(0, stale))
    for line in format_status(summary):
        typer.echo(line)
    if not summary.ready:
        raise typer.Exit(1)


@config_app.command("reference")
def config_reference(
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write the page here (docs/configuration.md); default: print"),
    ] = None,
) -> None:
    """Every configuration key with its type, limits, default, environment variable and
    meaning, generated from the settings model (docs/configuration.md)."""
    from gateway.operations.config_reference import render_reference, write_reference  # noqa: PLC0415  # imported when the command runs: `gateway --help` stays fast

    if out is None:
        typer.echo(render_reference(), nl=False)
        return
    typer.echo(f"{'wrote' if write_reference(out) else 'unchanged'}: {out}")


@profiles_app.command("validate")
def profiles_validate(
    paths: Annotated[list[Path] | None, typer.Argument(help="Files or directories")] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", "-c", help="Also check tenants and their destinations as this gateway does"
        ),
    ] = None,
) -> None:
    """Check profile files; exit 1 with file:line and field for every problem."""
    files = profile_files(paths or [Path("device_profiles")])
    # Without a configuration there are no tenants to check against: any destination is valid.
    policy = profile_policy(load_settings(config)) if config is not None else OFFLINE_POLICY
    compiled, problems = load_files(files, policy)
    if config is not None:
        problems.extend(check_tenancy([profile_destination(p) for p in compiled], policy))
    if not problems:
        try:
            ProfileRegistry(compiled)
        except ProfileError as exc:
            problems = exc.problems
    _print_warnings(compiled)
    for problem in problems:
        typer.echo(problem, err=True)
    if problems:
        raise typer.Exit(1)
    typer.echo(f"{len(compiled)} profiles ok")


def _print_warnings(profiles: Iterable[CompiledProfile]) -> None:
    for profile in profiles:
        for warning in profile.warnings:
            typer.echo(f"warning: {warning}", err=True)


@profiles_app.command("list")
def profiles_list(
    directory: Annotated[Path, typer.Option("--dir", help="Profiles directory")] = Path(
        "device_profiles"
    ),
) -> None:
    """One line per profile: id, version, domain, topic pattern, file."""
    for profile in _load_or_exit(directory).profiles:
        typer.echo(
            f"{profile.id}\tv{profile.version}\t{profile.domain}\t"
            f"{profile.pattern.text}\t{profile.file}"
        )


@profiles_app.command("schema")
def profiles_schema() -> None:
    """Print the profile format as JSON Schema (for editor autocompletion)."""
    typer.echo(json.dumps(ProfileSpec.model_json_schema(), indent=2))


@app.command("reasons")
def reasons(
    doc: Annotated[
        Path | None,
        typer.Option(
            help="Rewrite the table between its markers in this page (docs/operations.md); "
            "default: print it"
        ),
    ] = None,
) -> None:
    """Print every dead-letter and drop reason with what to do about it (Markdown)."""
    from gateway.operations.generated_docs import write_reasons  # noqa: PLC0415  # only this command
    from gateway.reasons import reasons_table  # noqa: PLC0415  # imported when the command runs: `gateway --help` stays fast

    if doc is None:
        typer.echo(reasons_table(), nl=False)
        return
    changed = write_reasons(doc)  # no markers: ConfigError, shown by main()
    typer.echo(f"{'wrote' if changed else 'unchanged'}: {doc}")


@profiles_app.command("code")
def profiles_code(
    profile_id: Annotated[str, typer.Argument(metavar="PROFILE_ID|FILE")],
    directory: Annotated[Path, typer.Option("--dir", help="Profiles directory")] = Path(
        "device_profiles"
    ),
) -> None:
    """Print the Python code a profile is compiled into (what a traceback's
    `<normalize ID>` lines refer to)."""
    registry, expected_id = _registry_for(profile_id, directory)
    profile = registry.get(expected_id or profile_id)
    assert profile is not None  # _registry_for checked the id
    typer.echo(f"# {source_name(profile)}: generated from {profile.file}")
    typer.echo(generated_source(profile), nl=False)


@profiles_app.command("reference")
def profiles_reference(
    readme: Annotated[
        Path | None,
        typer.Option(
            help="Rewrite the reference between its markers in this file "
            "(device_profiles/README.md); default: print it"
        ),
    ] = None,
) -> None:
    """Every profile key with its type, limits, default and meaning, generated from the
    profile schema (the "every key" tables of device_profiles/README.md)."""
    from gateway.operations.profile_reference import (  # noqa: PLC0415  # only this command
        render_profile_reference,
        write_profile_reference,
    )

    if readme is None:
        typer.echo(render_profile_reference(), nl=False)
        return
    changed = write_profile_reference(readme)  # no markers: ConfigError, shown by main()
    typer.echo(f"{'wrote' if changed else 'unchanged'}: {readme}")


@profiles_app.command("test")
def profiles_test(  # noqa: PLR0917  # typer turns each parameter into an option
    profile_id: Annotated[
        str | None,
        typer.Argument(
            metavar="PROFILE_ID|FILE",
            help="Profile id, or a profile FILE to try before `profiles add` (default: the "
            "profile whose pattern matches --topic)",
        ),
    ] = None,
    topic: Annotated[
        str | None, typer.Option(help="The MQTT topic the device publishes on")
    ] = None,
    payload: Annotated[
        str | None, typer.Option(help="@FILE, hex:..., base64:... or the text itself")
    ] = None,
    golden: Annotated[
        Path | None,
        typer.Option(
            help="Run a golden vector file (tests/golden/<id>.json) instead; exit 1 if "
            "any case fails"
        ),
    ] = None,
    received: Annotated[
        str | None,
        typer.Option(
            help="Receive time, ISO 8601 with offset (default: now); device clocks "
            "are judged against it"
        ),
    ] = None,
    directory: Annotated[Path, typer.Option("--dir", help="Profiles directory")] = Path(
        "device_profiles"
    ),
) -> None:
    """Run a payload through a profile: readings as a table and as line protocol, and every
    dropped field with its reason. Exit 1 when the message would be dead-lettered."""
    registry, expected_id = _registry_for(profile_id, directory)
    if golden is not None:
        _run_golden_file(registry, expected_id, golden)
        return
    if topic is None or payload is None:
        raise typer.BadParameter("give --topic and --payload, or --golden FILE")
    message = _payload_bytes(payload)
    profile, _ = _resolve(registry, topic, message, expected_id)
    received_ns = time.time_ns() if received is None else parse_received(received, "--received")
    _print_warnings([profile])
    typer.echo(f"profile {profile.id} v{profile.version} ({profile.file})")
    # A registry of this profile alone: it is tried even where another profile wins the topic.
    outcome = run_message(ProfileRegistry([profile]), topic, message, received_ns)
    if isinstance(outcome, Refused):
        _print_drops(outcome.drops)
        typer.echo(f"dead letter: {outcome.reason}: {outcome.detail}", err=True)
        raise typer.Exit(1)
    if not isinstance(outcome, Accepted):
        typer.echo(f"not a reading ({type(outcome).__name__}): acknowledged, nothing stored")
        return
    database, rp = profile.database, profile.retention_policy
    lines = outcome.readings.lines
    _print_table([decode_line(line, database, rp) for line in lines])
    typer.echo("\nline protocol:")
    for line in lines:
        typer.echo(line)
    _print_drops(outcome.drops)


def run_message(registry: ProfileRegistry, topic: str, payload: bytes, received_ns: int) -> Outcome:
    """One message through the gateway's message rules (gateway/process.py), offline: the same
    decoding, normalizing, known-device check, series budget (a fresh one) and limits as a
    running gateway with the default [limits]."""
    return MessageRules(registry).process(Message(topic, payload, received_ns))


def _load_or_exit(directory: Path) -> ProfileRegistry:
    """Profile problems are validation errors: listed one per line, exit 1."""
    try:  # offline: golden vectors hash with the public test key, tenants are not checked
        return load_directory(directory, OFFLINE_POLICY)
    except ProfileError as exc:
        for problem in exc.problems:
            typer.echo(problem, err=True)
        raise typer.Exit(1) from None


def _registry_for(profile_arg: str | None, directory: Path) -> tuple[ProfileRegistry, str | None]:
    """The profiles to try and the expected profile id: one file on its own, or a directory."""
    if profile_arg is not None and Path(profile_arg).suffix in PROFILE_SUFFIXES:
        try:
            profile = load_file(Path(profile_arg))
        except ProfileError as exc:
            for problem in exc.problems:
                typer.echo(problem, err=True)
            raise typer.Exit(1) from None
        return ProfileRegistry([profile]), profile.id
    registry = _load_or_exit(directory)
    if profile_arg is not None and registry.get(profile_arg) is None:
        raise ConfigError(f"no profile {profile_arg!r} in {directory} (see `profiles list`)")
    return registry, profile_arg


def _resolve(
    registry: ProfileRegistry, topic: str, payload: bytes, expected_id: str | None
) -> tuple[CompiledProfile, dict[str, str]]:
    if expected_id is not None:
        profile = registry.get(expected_id)
        segments = profile.pattern.match(topic) if profile else None
        if profile is None or segments is None:
            pattern = profile.pattern.text if profile else "?"
            raise ConfigError(
                f"topic {topic!r} does not match profile {expected_id!r} (pattern {pattern!r})"
            )
        return profile, segments
    resolved = registry.resolve(topic, payload)
    if resolved is None:
        raise ConfigError(f"topic {topic!r} matches no profile (see `profiles list`)")
    return resolved.profile, resolved.segments


def _print_table(points: list[Point]) -> None:
    rows = [("measurement", "time (UTC)", "tags", "fields")]
    rows.extend(
        (
            point.measurement,
            iso_utc(point.time_ns),
            " ".join(f"{key}={value}" for key, value in point.tags),
            " ".join(f"{name}={_shown(value)}" for name, value in point.fields.items()),
        )
        for point in points
    )
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    for *cells, fields in rows:  # fields last and unpadded: the widest column
        padded = "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True))
        typer.echo(f"{padded}  {fields}")


def _shown(value: FieldValue) -> str:
    if type(value) is bool:
        return "true" if value else "false"
    return json.dumps(value) if type(value) is str else repr(value)


def iso_utc(time_ns: int) -> str:
    """2026-11-24T01:00:00.123Z: UTC, with as many fraction digits as the time has."""
    seconds, fraction = divmod(time_ns, 10**9)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    digits = f"{fraction:09d}".rstrip("0")
    return f"{text}.{digits}Z" if digits else f"{text}Z"


def parse_received(text: str | int, what: str) -> int:
    """Receive time in ns from ISO 8601 text with an offset (or Z), or integer nanoseconds."""
    if type(text) is int:
        return text
    try:
        moment = datetime.fromisoformat(str(text))
    except ValueError as exc:
        raise ConfigError(f"{what}: {exc}; write e.g. 2026-11-24T08:00:00+07:00") from None
    if moment.tzinfo is None:
        raise ConfigError(f"{what}: {text!r} has no offset; add one, e.g. +07:00 or Z")
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86400 + delta.seconds) * 10**9 + delta.microseconds * 1000


def _print_drops(drops: list[Drop]) -> None:
    typer.echo("\ndropped:" if drops else "\ndropped: nothing")
    for name, reason in drops:
        typer.echo(f"  {name}: {reason}")


def _payload_bytes(text: str) -> bytes:
    try:
        if text.startswith("@"):
            return Path(text[1:]).read_bytes()
        if text.startswith("hex:"):
            return bytes.fromhex(text[4:])
        if text.startswith("base64:"):
            return base64.b64decode(text[7:], validate=True)
    except (OSError, ValueError, binascii.Error) as exc:
        raise ConfigError(f"--payload {text[:40]!r}: {exc}") from exc
    return text.encode()


# --- golden vectors: the same runner for technicians and the test suite -----------------------
#
# A golden file is a JSON list of cases: {"name", "topic", "payload" (text) or "payload_hex",
# optional "received" (ISO 8601 with offset, or integer ns), then either "lines" (expected line
# protocol) and "drops" (expected [name, reason] pairs), or "dead_letter" (the expected reason),
# or "acknowledged" (acknowledged with nothing to store, e.g. "empty_frame")}.
# Without "received" the receive time is 0, an unset gateway clock, so device times are kept
# as sent and the vector does not age.


def read_golden(file: Path) -> list[dict[str, Any]]:
    """The cases of a golden file; ConfigError naming the file and case when malformed."""
    try:
        cases = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: cannot read: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{file}:{exc.lineno}: not valid JSON: {exc.msg}") from None
    if not isinstance(cases, list) or not all(isinstance(case, dict) for case in cases):
        raise ConfigError(f"{file}: a golden file is a JSON list of case objects")
    for index, case in enumerate(cases):
        problem = _golden_case_problem(case)
        if problem:
            raise ConfigError(f"{file}: case {index} ({case.get('name', 'unnamed')}): {problem}")
    return cases


def _golden_case_problem(case: dict[str, Any]) -> str | None:
    if not isinstance(case.get("topic"), str):
        return "needs a 'topic' text"
    if not isinstance(case.get("payload"), str) and not isinstance(case.get("payload_hex"), str):
        return "needs a 'payload' text or a 'payload_hex' text"
    if not ({"dead_letter", "acknowledged"} & case.keys() or {"lines", "drops"} <= case.keys()):
        return "needs 'lines' and 'drops', or 'dead_letter', or 'acknowledged'"
    return None


def golden_failures(
    registry: ProfileRegistry, expected_id: str | None, case: dict[str, Any]
) -> list[str]:
    """How the profile's output differs from the case; [] when the case passes."""
    payload = (
        bytes.fromhex(case["payload_hex"]) if "payload_hex" in case else case["payload"].encode()
    )
    resolved = registry.resolve(case["topic"], payload)
    if resolved is None:
        return [f"topic {case['topic']!r} matches no profile"]
    if expected_id is not None and resolved.profile.id != expected_id:
        return [f"topic resolves to profile {resolved.profile.id!r}, not {expected_id!r}"]
    received_ns = parse_received(case.get("received", 0), "received")
    return _outcome_failures(case, run_message(registry, case["topic"], payload, received_ns))


def _outcome_failures(case: dict[str, Any], outcome: Outcome) -> list[str]:
    if isinstance(outcome, Refused):
        if case.get("dead_letter") == outcome.reason:
            return []
        expected = f"dead letter {case['dead_letter']!r}" if "dead_letter" in case else "points"
        return [f"expected {expected}, got dead letter {outcome.reason}: {outcome.detail}"]
    if not isinstance(outcome, Accepted):
        why = outcome.why if isinstance(outcome, AckOnly) else "availability"
        if case.get("acknowledged") == why:
            return []
        return [f"acknowledged without storing ({why}), not as the case expects"]
    if {"dead_letter", "acknowledged"} & case.keys():
        return [f"expected no points, got {len(outcome.readings.lines)} points"]
    failures = []
    drops = outcome.drops
    lines = outcome.readings.lines
    if lines != case["lines"]:
        failures.append(f"lines differ:\n  expected {case['lines']}\n  got      {lines}")
    got_drops = [list(drop) for drop in drops]
    if got_drops != case["drops"]:
        failures.append(f"drops differ:\n  expected {case['drops']}\n  got      {got_drops}")
    return failures


def _run_golden_file(registry: ProfileRegistry, expected_id: str | None, file: Path) -> None:
    if expected_id is None and registry.get(file.stem) is not None:
        expected_id = file.stem  # tests/golden/<profile-id>.json
    failed = 0
    cases = read_golden(file)
    for case in cases:
        failures = golden_failures(registry, expected_id, case)
        typer.echo(f"{'FAIL' if failures else 'ok  '}  {case.get('name', case['topic'])}")
        for line in "\n".join(failures).splitlines():
            typer.echo(f"      {line}")
        failed += bool(failures)
    typer.echo(f"{file}: {len(cases) - failed} passed, {failed} failed")
    if failed:
        raise typer.Exit(1)


@profiles_app.command("import")
def profiles_import(  # noqa: PLR0917  # typer turns each parameter into an option
    device: Annotated[str, typer.Argument(help="vendor/device, e.g. milesight-iot/am103")],
    repo: Annotated[Path, typer.Option(help="Local checkout of TheThingsNetwork/lorawan-devices")],
    out: Annotated[Path, typer.Option(help="Folder for the profile, codec and golden file")],
    firmware: Annotated[
        str | None, typer.Option(help="Firmware version, when the device lists several codecs")
    ] = None,
    region: Annotated[
        str | None, typer.Option(help="Region profile (e.g. EU863-870), when codecs differ")
    ] = None,
    envelope: Annotated[
        str, typer.Option(help="Uplinks from tts_v3 (The Things Stack) or chirpstack_v4")
    ] = "tts_v3",
    domain: Annotated[str, typer.Option(help="The profile's domain")] = "environment",
) -> None:
    """Write a profile that runs the vendor's codec, the codec next to it and golden vectors
    from the codec's examples; then run `gateway profiles test --dir OUT --golden FILE`."""
    from gateway.operations.profile_import import import_device  # noqa: PLC0415  # keep `--help` fast

    report = import_device(repo, device, out, firmware, region, envelope, domain)
    typer.echo(f"profile: {report.profile}\ncodec:   {report.codec}")
    typer.echo(f"golden:  {report.golden} ({len(report.examples)} examples)")
    typer.echo(f"not mapped: {len(report.unmapped) or 'nothing'}")
    for note in report.unmapped:
        typer.echo(f"  {note}")
    typer.echo(f"check: gateway profiles test --dir {out} --golden {report.golden}")


@profiles_app.command("add")
def profiles_add(
    file: Annotated[Path, typer.Argument(help="The profile file to install")],
    directory: Annotated[
        Path | None,
        typer.Option("--dir", help="Profiles directory (default: profiles.dir of --config)"),
    ] = None,
    config: ConfigOption = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="Overwrite a file that holds another profile id")
    ] = False,
) -> None:
    """Validate a profile with the installed ones (ids, topics), then copy it atomically to
    DIR/<domain>/<file name>. Exit 1 with file:line: field: problem on any conflict."""
    target_dir = directory or load_settings(config).profiles.dir
    try:
        installed = install_profile(file, target_dir, replace=replace)
    except ProfileError as exc:
        for problem in exc.problems:
            typer.echo(problem, err=True)
        raise typer.Exit(1) from None
    _print_warnings([installed.profile])
    profile = installed.profile
    typer.echo(
        f"{installed.action}: {installed.path} (profile {profile.id} v{profile.version}); "
        f"{installed.profile_count} profiles in {target_dir} ok.\n"
        "A running gateway loads it within profiles.reload_interval_s (or at its next start)."
    )


@deadletter_app.command("list")
def deadletter_list(
    config: ConfigOption = None,
    limit: Annotated[int, typer.Option(help="How many of the newest to show")] = 20,
) -> None:
    """Counts by reason, then the newest dead letters (id, time, reason, profile, topic)."""
    store = _open_dead_letters(config)
    for reason, count in store.counts_by_reason().items():
        typer.echo(f"{count:>8}  {reason}")
    for letter_id, letter in store.latest(limit):
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(letter.received_ns / 1e9))
        typer.echo(
            f"#{letter_id}\t{when}\t{letter.reason}\t{letter.profile_id or '-'}\t{letter.topic}"
        )
    store.close()


@deadletter_app.command("show")
def deadletter_show(
    letter_id: Annotated[int, typer.Argument(help="Id from `gateway deadletter list`")],
    config: ConfigOption = None,
) -> None:
    """One dead letter in full: topic, reason, detail and the payload as sent."""
    store = _open_dead_letters(config)
    letter = store.get(letter_id)
    store.close()
    if letter is None:
        raise ConfigError(f"no dead letter #{letter_id}")
    typer.echo(f"topic:   {letter.topic}\nreason:  {letter.reason}\ndetail:  {letter.detail}")
    typer.echo(f"profile: {letter.profile_id or '-'}\nreceived_ns: {letter.received_ns}")
    try:
        typer.echo(f"payload: {letter.payload.decode('utf-8')}")
    except UnicodeDecodeError:
        typer.echo(f"payload (hex): {letter.payload.hex()}")


@deadletter_app.command("replay")
def deadletter_replay(
    config: ConfigOption = None,
    reason: Annotated[str | None, typer.Option(help="Only letters with this reason")] = None,
    profile: Annotated[str | None, typer.Option(help="Only letters of this profile id")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Decode and count, write nothing")
    ] = False,
) -> None:
    """Run dead letters through today's profiles again and write what now decodes.

    Replayed letters leave the store; the rest stay, listed by the reason they fail with now."""
    from gateway.operations.replay import DeadLetterReplay, ReplayReport  # noqa: PLC0415  # keep `--help` fast
    from gateway.stages.sinks.influx import InfluxSink  # noqa: PLC0415  # imported when the command runs: `gateway --help` stays fast

    settings = load_settings(config)
    registry = _load_for(settings)
    store = _open_dead_letters(config)
    sink = InfluxSink(settings.influx)

    total = store.count(reason) if profile is None else None
    live = sys.stderr.isatty()

    def show(report: ReplayReport) -> None:
        # A live line on a terminal only; a log file or a pipe gets the summary alone.
        if live:
            of = f"/{total:,}" if total is not None else ""
            sys.stderr.write(
                f"\r{report.seen:,}{of} letters looked at: {report.replayed:,} replayed, "
                f"{report.kept:,} kept"
            )
            sys.stderr.flush()

    async def replay() -> None:
        try:
            limits = MessageLimits(
                settings.limits.max_payload_bytes, settings.limits.max_readings_per_message
            )
            report = await DeadLetterReplay(store, registry, sink, limits).run(
                reason, profile, dry_run=dry_run, progress=show
            )
        finally:
            await sink.close()
            store.close()
            if live:
                sys.stderr.write("\n")
        verb = "would replay" if dry_run else "replayed"
        typer.echo(f"{verb} {report.replayed} dead letters ({report.points} points)")
        for still, count in sorted(report.still_failing.items()):
            typer.echo(f"{count:>8}  still failing: {still}")

    try:
        asyncio.run(replay())
    except SinkError as exc:
        raise ConfigError(f"InfluxDB did not take the replay, nothing more removed: {exc}") from exc


def _open_dead_letters(config: Path | None) -> DeadLetterStore:
    path = load_settings(config).spool.dir / DEAD_LETTER_FILE
    if not path.exists():
        raise ConfigError(f"{path}: no dead-letter store yet (the gateway creates it on start)")
    return DeadLetterStore(path)


@dashboards_app.command("build")
def dashboards_build(
    out: Annotated[
        Path,
        typer.Option(
            "--out", help="dashboards directory: writes json/*.json and provisioning/alerting/"
        ),
    ] = Path("dashboards"),
) -> None:
    """Regenerate the Grafana dashboards and alert rules from dashboards/."""
    try:
        # Imported here: the SDK is the optional `dashboards` extra, and `gateway run` never
        # needs it.
        from dashboards.build import write  # noqa: PLC0415  # imported when the command runs: `gateway --help` stays fast
    except ModuleNotFoundError as exc:
        if exc.name is None or not exc.name.startswith("grafana_foundation_sdk"):
            raise
        raise ConfigError(
            "grafana-foundation-sdk is not installed: pip install 'mh-gateway[dashboards]'"
        ) from exc
    for path in write(out):
        typer.echo(f"wrote {path}")


def _dashboards_extra_missing(
    exc: ModuleNotFoundError, packages: tuple[str, ...], extra: str = "dashboards"
) -> ConfigError:
    """A clear message for an optional extra that is not installed (re-raises anything else)."""
    if exc.name is None or not exc.name.startswith(packages):
        raise exc
    return ConfigError(f"{exc.name} is not installed: pip install 'mh-gateway[{extra}]'")


@dashboards_app.command("push")
def dashboards_push(
    *,
    url: Annotated[str, typer.Option("--url", help="Grafana's root URL: http://HOST:3000[/PATH]")],
    token: Annotated[
        str | None,
        typer.Option(
            envvar="GRAFANA_TOKEN",
            help="service-account token; prefer the variable or --token-file (ps shows argv)",
        ),
    ] = None,
    token_file: Annotated[Path | None, typer.Option(help="file holding the token")] = None,
    user: Annotated[str | None, typer.Option(help="basic auth instead of a token")] = None,
    password: Annotated[
        str | None, typer.Option(envvar="GRAFANA_PASSWORD", help="password for --user")
    ] = None,
    password_file: Annotated[Path | None, typer.Option(help="file holding the password")] = None,
    influx_url: Annotated[
        str | None,
        typer.Option(help="InfluxDB URL as Grafana reaches it [default: keep, or influxdb:8086]"),
    ] = None,
    influx_db: Annotated[
        str | None, typer.Option(help="InfluxDB database [default: keep, or telemetry]")
    ] = None,
    timeout_s: Annotated[float, typer.Option("--timeout", help="seconds per request")] = 10.0,
    alerts_only: Annotated[
        bool,
        typer.Option(
            "--alerts-only",
            help="only the alert rules, into the folder that file provisioning made "
            "(docs/dashboards.md)",
        ),
    ] = False,
    wait_s: Annotated[
        float,
        typer.Option(
            "--wait",
            min=0,
            help="seconds to wait for Grafana to answer and, with --alerts-only, for its "
            "folder mh-town to exist (docker-compose.yml's alert-rules service)",
        ),
    ] = 0.0,
) -> None:
    """Create or update the data source, folder, dashboards and alert rules in a Grafana."""
    try:
        from dashboards import push  # noqa: PLC0415  # optional extra, like `build`
    except ModuleNotFoundError as exc:
        raise _dashboards_extra_missing(exc, ("grafana_client", "grafana_foundation_sdk")) from exc
    login = push.credentials(token, token_file, user, password, password_file)
    api = push.connect(url, login, timeout_s)
    outcomes = dict.fromkeys(("created", "updated", "unchanged"), 0)
    target = push.InfluxTarget(influx_url, influx_db)
    changes = push.push(
        api,
        url,
        target,
        alerts_only=alerts_only,
        wait_s=wait_s,
        report=lambda waiting: typer.echo(waiting, err=True),
    )
    for change in changes:
        typer.echo(f"{change.outcome:<9} {change.kind:<11} {change.name}")
        outcomes[change.outcome] += 1
    summary = ", ".join(f"{count} {outcome}" for outcome, count in outcomes.items())
    typer.echo(f"Grafana {push.display_url(url)}: {summary}")


@dashboards_app.command("render")
def dashboards_render(
    influx_url: Annotated[str, typer.Option(help="InfluxDB 1.x URL")] = "http://127.0.0.1:8086",
    database: Annotated[str, typer.Option(help="InfluxDB database")] = "telemetry",
    out: Annotated[Path, typer.Option(help="directory for dashboard-*.png")] = Path("docs/img"),
) -> None:
    """Draw each dashboard's panels from its InfluxQL to one PNG (not a Grafana screenshot)."""
    try:
        # matplotlib and the SDK are the optional `pictures` extra
        from dashboards import build, influxread, render  # noqa: PLC0415  # imported when the command runs: `gateway --help` stays fast
    except ModuleNotFoundError as exc:
        missing = ("matplotlib", "PIL", "grafana_foundation_sdk")
        raise _dashboards_extra_missing(exc, missing, "pictures") from exc
    dashboards = [build.plain(dashboard) for dashboard in build.dashboards()]
    reader = influxread.InfluxReader(influx_url, database)
    for rendered in render.render_all(dashboards, reader, out):
        typer.echo(f"wrote {rendered.path}")
        for title in rendered.empty_panels:
            typer.echo(f"  no data: {title}")


@app.command("report")
def report(  # noqa: PLR0917  # typer turns each parameter into an option
    start: Annotated[
        str, typer.Option("--from", help="start, ISO date or date-time (local time if no offset)")
    ],
    end: Annotated[str, typer.Option("--to", help="end, exclusive: --to 2027-01-01 for 2026")],
    out: Annotated[Path, typer.Option(help="directory for report.html and csv/")] = Path("report"),
    influx_url: Annotated[str, typer.Option(help="InfluxDB 1.x URL")] = "http://127.0.0.1:8086",
    database: Annotated[str, typer.Option(help="InfluxDB database")] = "telemetry",
    profiles: Annotated[
        Path, typer.Option(help="device profiles (domain and interval per measurement)")
    ] = Path("device_profiles"),
) -> None:
    """The town plan's yearly/ad-hoc report from InfluxDB: HTML and a CSV per table."""
    try:
        from dashboards import report as town_report  # noqa: PLC0415  # matplotlib: pictures extra
    except ModuleNotFoundError as exc:
        raise _dashboards_extra_missing(exc, ("matplotlib", "yaml"), "pictures") from exc
    try:
        first = town_report.parse_instant(start, "--from")
        last = town_report.parse_instant(end, "--to")
        written = town_report.write_report(influx_url, database, first, last, out, profiles)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    for path in written:
        typer.echo(f"wrote {path}")
