"""Thin typer commands over the library. User errors print one clear message, no traceback."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import signal
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from gateway.config import GatewaySettings, load_settings
from gateway.deadletter import DEAD_LETTER_FILE, DeadLetterStore
from gateway.decode import decoder_for
from gateway.errors import ConfigError, DecodeError, GatewayError, ProfileError, SinkError
from gateway.lineprotocol import encode_point
from gateway.normalize import Drop, normalize
from gateway.profiles.registry import (
    ProfileRegistry,
    load_directory,
    load_files,
    profile_files,
)
from gateway.profiles.schema import ProfileSpec

# Plain tracebacks: rich's boxed ones mangle journald output and our user errors never reach it.
app = typer.Typer(
    no_args_is_help=True, add_completion=False, help=__doc__, pretty_exceptions_enable=False
)
profiles_app = typer.Typer(no_args_is_help=True, help="Write, check and try device profiles.")
app.add_typer(profiles_app, name="profiles")
deadletter_app = typer.Typer(no_args_is_help=True, help="Inspect messages the gateway refused.")
app.add_typer(deadletter_app, name="deadletter")

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="gateway.toml (env GATEWAY_* overrides it)")
]


def main() -> None:
    try:
        app()
    except GatewayError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)


@app.command()
def run(config: ConfigOption = None) -> None:
    """Run the gateway until SIGTERM or Ctrl-C."""
    from gateway import logs  # noqa: PLC0415  # keep `gateway --help` fast
    from gateway.pipeline import Gateway  # noqa: PLC0415

    settings = load_settings(config)
    logs.configure(settings.log.level)
    registry = load_directory(settings.profiles.dir)
    _warn_about_loss(settings)

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await Gateway(settings, registry).run(stop)

    asyncio.run(serve())


def _warn_about_loss(settings: GatewaySettings) -> None:
    import logging  # noqa: PLC0415

    log = logging.getLogger("gateway")
    if settings.mqtt.qos == 0:
        log.warning("mqtt.qos = 0: the broker does not redeliver, readings CAN BE LOST")
    if settings.mqtt.session_expiry_s == 0:
        log.warning("mqtt.session_expiry_s = 0: readings sent while the gateway is down ARE LOST")


@app.command("check-config")
def check_config(config: ConfigOption = None) -> None:
    """Validate the configuration and every profile exactly as start-up does."""
    settings = load_settings(config)
    registry = load_directory(settings.profiles.dir)
    typer.echo(f"configuration ok; {len(registry.profiles)} profiles from {settings.profiles.dir}")


@profiles_app.command("validate")
def profiles_validate(
    paths: Annotated[list[Path] | None, typer.Argument(help="Files or directories")] = None,
) -> None:
    """Check profile files; exit 1 with file:line and field for every problem."""
    files = profile_files(paths or [Path("device_profiles")])
    compiled, problems = load_files(files)
    if not problems:
        try:
            ProfileRegistry(compiled)
        except ProfileError as exc:
            problems = exc.problems
    for problem in problems:
        typer.echo(problem, err=True)
    if problems:
        raise typer.Exit(1)
    typer.echo(f"{len(compiled)} profiles ok")


@profiles_app.command("list")
def profiles_list(
    directory: Annotated[Path, typer.Option("--dir", help="Profiles directory")] = Path(
        "device_profiles"
    ),
) -> None:
    """One line per profile: id, version, domain, topic pattern, file."""
    for profile in load_directory(directory).profiles:
        typer.echo(
            f"{profile.id}\tv{profile.version}\t{profile.domain}\t"
            f"{profile.pattern.text}\t{profile.file}"
        )


@profiles_app.command("schema")
def profiles_schema() -> None:
    """Print the profile format as JSON Schema (for editor autocompletion)."""
    typer.echo(json.dumps(ProfileSpec.model_json_schema(), indent=2))


@profiles_app.command("test")
def profiles_test(
    topic: Annotated[str, typer.Option(help="The MQTT topic the device publishes on")],
    payload: Annotated[str, typer.Option(help="@FILE, hex:..., base64:... or the text itself")],
    profile_id: Annotated[str | None, typer.Argument(help="Profile id (default: by topic)")] = None,
    directory: Annotated[Path, typer.Option("--dir", help="Profiles directory")] = Path(
        "device_profiles"
    ),
) -> None:
    """Run a payload through a profile: readings, line protocol and every dropped field."""
    registry = load_directory(directory)
    resolved = registry.resolve(topic)
    if resolved is None or (profile_id and resolved.profile.id != profile_id):
        wanted = f"profile {profile_id!r}" if profile_id else "any profile"
        raise ConfigError(f"topic {topic!r} does not match {wanted}")
    drops: list[Drop] = []
    try:
        document = decoder_for(resolved.profile.decode_spec)(_payload_bytes(payload))
        points = normalize(resolved.profile, document, resolved.segments, time.time_ns(), drops)
    except DecodeError as exc:
        _print_drops(drops)
        typer.echo(f"dead letter: {exc}", err=True)
        raise typer.Exit(1) from None
    for point in points:
        typer.echo(encode_point(point))
    _print_drops(drops)


def _print_drops(drops: list[Drop]) -> None:
    for name, reason in drops:
        typer.echo(f"dropped {name}: {reason}", err=True)


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
    from gateway.reprocess import DeadLetterReplay  # noqa: PLC0415  # keep `--help` fast
    from gateway.sinks.influx import InfluxSink  # noqa: PLC0415

    settings = load_settings(config)
    registry = load_directory(settings.profiles.dir)
    store = _open_dead_letters(config)
    sink = InfluxSink(settings.influx)

    async def replay() -> None:
        try:
            report = await DeadLetterReplay(store, registry, sink).run(
                reason, profile, dry_run=dry_run
            )
        finally:
            await sink.close()
            store.close()
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
