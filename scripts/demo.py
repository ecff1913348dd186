"""`make demo`: the whole pipeline on this machine, watched live, then checked in InfluxDB.

    private mosquitto + influxd (under .demo/) -> `python -m gateway run`
        <- `python -m simulators run` (every device kind) for --duration seconds
    -> readings sent vs stored, two sample InfluxQL queries, exit 0 if readings landed.

The gateway and the simulators share a random privacy hash key (.demo/hash-key), so the plate
hashes the gateway stores are the ones the simulators' truth file expects.

Ctrl-C stops early and still prints the summary. Everything stays in .demo/ for inspection.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python scripts/demo.py` puts scripts/, not the repo, on the path
    sys.path.insert(0, str(ROOT))

from simulators.devices import KINDS  # noqa: E402 - needs ROOT on sys.path
from tests.servers import Influxd, Mosquitto, ServerError  # noqa: E402 - needs ROOT on sys.path

DEMO_DIR = ROOT / ".demo"
GATEWAY_CONFIG = DEMO_DIR / "gateway.toml"
GATEWAY_LOG = DEMO_DIR / "gateway.log"
SIM_LOG = DEMO_DIR / "simulators.log"
SIM_SUMMARY = DEMO_DIR / "simulators.json"
TRUTH = DEMO_DIR / "truth.jsonl"
HASH_KEY = DEMO_DIR / "hash-key"
HASH_KEY_BYTES = 32
DATABASE = "mhtown"
# Every simulated kind, so a new kind is in the demo and its summary without an edit here
# (once each: JSON and LoRaWAN street lights both write streetlight).
MEASUREMENTS = tuple(dict.fromkeys(kind.measurement for kind in KINDS.values()))
# A radar message carries up to ~80 vehicles at the peaks: a tenth as many keeps the mix even.
DEVICE_SHARE = {"radars": 0.1}
# As in a real town, the cheap, chatty devices publish at QoS 0 (a lost report is replaced by
# the next one) and the rest at QoS 1: the gateway must take both on one subscription.
QOS0_KINDS = ("lighting", "traffic", "speed-probes", "site-monitors")

GATEWAY_READY = "subscribed to"
# Gateway log lines that mean a reading did not become a point (pipeline.py logs them).
DEAD_LETTER_MARKS = ("dead letter (", "InfluxDB rejected a line for good")
WRITE_ERROR_MARK = "write failed"

GATEWAY_START_TIMEOUT_S = 30.0
PROCESS_STOP_TIMEOUT_S = 30.0
# The simulators stop themselves after --duration; this is only for one that hangs.
SIM_OVERRUN_S = 15.0
# After the simulators stop, the gateway may still hold or be fetching a backlog.
DRAIN_TIMEOUT_S = 60.0
DRAIN_STALL_S = 5.0
PROGRESS_EVERY_S = 1.0

SAMPLE_QUERIES = (
    ("SELECT MEAN(power_w) FROM streetlight WHERE time > now() - 1h GROUP BY district", True),
    ("SELECT * FROM water_flow ORDER BY time DESC LIMIT 3", False),
)


class DemoError(RuntimeError):
    """A step of the demo failed; the message says which and where to look."""


class Interrupts:
    """First Ctrl-C: finish early but cleanly. Second: abort (processes are still stopped)."""

    def __init__(self) -> None:
        self.requested = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nstopping early (Ctrl-C again to abort)...", file=sys.stderr, flush=True)


# ---- command line ------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Run mosquitto, InfluxDB, the gateway and the simulators; check the result."
    )
    parser.add_argument(
        "--duration", type=_positive_float, default=60.0, metavar="SECONDS", help="default 60"
    )
    parser.add_argument(
        "--devices", type=_positive_int, default=50, metavar="N", help="per device kind, default 50"
    )
    parser.add_argument(
        "--rate", type=_positive_float, default=500.0, metavar="MSGS_PER_S", help="default 500"
    )
    # Set by the supervising parent on the process that does the work; see supervise().
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:  # also rejects NaN
        raise argparse.ArgumentTypeError(f"{text} is not a number > 0")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not a whole number > 0")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        return run_demo(args)
    return supervise(list(sys.argv[1:] if argv is None else argv))


def supervise(argv: list[str]) -> int:
    """Run the demo in a session of its own and turn terminal signals into a clean stop.

    Ctrl-C sends SIGINT to the whole foreground process group. tests.servers starts mosquitto
    and influxd in our group, and both exit on SIGINT, so the summary could no longer query
    InfluxDB. The worker and everything it starts live in a new session instead; this parent
    stays in the terminal's group and forwards the signal to the worker alone.
    """
    worker = subprocess.Popen([sys.executable, __file__, *argv, "--worker"], start_new_session=True)

    def forward(signum: int, frame: FrameType | None) -> None:
        if worker.poll() is None:
            worker.send_signal(signal.SIGINT)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, forward)
    # PEP 475: wait() resumes after each forwarded signal.
    return worker.wait()


# ---- the demo ------------------------------------------------------------------------------


def run_demo(args: argparse.Namespace) -> int:
    interrupts = Interrupts()
    signal.signal(signal.SIGINT, interrupts)
    signal.signal(signal.SIGTERM, interrupts)
    shutil.rmtree(DEMO_DIR, ignore_errors=True)
    DEMO_DIR.mkdir(parents=True)
    broker = Mosquitto(DEMO_DIR / "mosquitto")
    influxd = Influxd(DEMO_DIR / "influxdb")
    stored = 0
    failure = f"no readings stored in InfluxDB; see {GATEWAY_LOG}"
    try:
        broker.start()
        influxd.start()
        print(f"mosquitto on {broker.address}, influxd on {influxd.url}", file=sys.stderr)
        stored = run_pipeline(args, broker, influxd, interrupts)
    except (DemoError, ServerError, OSError, ValueError) as exc:
        stored, failure = 0, str(exc)
    except KeyboardInterrupt:
        print("\ndemo aborted", file=sys.stderr)
        return 130
    finally:
        influxd.stop()
        broker.stop()
        print_where_data_is(influxd)
    if stored == 0:
        print(f"\nDemo FAILED: {failure}", file=sys.stderr)
        return 1
    print(f"\nDemo OK: {stored:,} readings stored in InfluxDB")
    return 0


def run_pipeline(
    args: argparse.Namespace, broker: Mosquitto, influxd: Influxd, interrupts: Interrupts
) -> int:
    """Gateway and simulators against the running servers; returns the readings stored."""
    influxd.create_database(DATABASE)
    hash_key = write_hash_key()
    write_gateway_config(broker, influxd)
    command = [sys.executable, "-m", "gateway", "run", "--config", str(GATEWAY_CONFIG)]
    gateway = start_logged(command, log=GATEWAY_LOG)
    try:
        wait_until_subscribed(gateway)
        health = re.search(r"health endpoint on (\S+)", GATEWAY_LOG.read_text(encoding="utf-8"))
        if health:
            print(f"gateway health and metrics: {health.group(1)}", file=sys.stderr)
        sims = start_simulators(args, broker, hash_key)
        progress = Progress()
        try:
            watch(
                args, progress, influxd=influxd, gateway=gateway, sims=sims, interrupts=interrupts
            )
        finally:
            stop_process(sims, "simulators", signal.SIGINT)
        if sims.returncode != 0:
            print(f"simulators exited with {sims.returncode}:\n{tail(SIM_LOG)}", file=sys.stderr)
        else:
            print(tail(SIM_LOG, lines=1), file=sys.stderr)  # the simulators' own summary line
        sent = sent_counts()
        if sent is not None:
            wait_for_drain(progress, influxd, gateway, sent)
    finally:
        if gateway.poll() is None:
            print("stopping the gateway (SIGTERM: flush, acknowledge, exit)", file=sys.stderr)
        stop_process(gateway, "gateway", signal.SIGTERM)
    stored = stored_counts(influxd)
    print_counts(sent, stored)
    for query, aggregate in SAMPLE_QUERIES:
        print_query(influxd, query, hide_time=aggregate)
    return sum(stored.values())


def write_hash_key() -> str:
    """A fresh key for this demo only, readable by its owner alone, as in production."""
    key = secrets.token_hex(HASH_KEY_BYTES)
    HASH_KEY.touch(mode=0o600)
    HASH_KEY.write_text(key, encoding="utf-8")
    return key


def write_gateway_config(broker: Mosquitto, influxd: Influxd) -> None:
    def toml(value: object) -> str:
        return json.dumps(value)  # JSON strings and numbers are valid TOML

    GATEWAY_CONFIG.write_text(
        f"""# generated by scripts/demo.py
[mqtt]
host = {toml(broker.host)}
port = {broker.port}
client_id = "mh-demo-gateway"

[influx]
url = {toml(influxd.url)}
database = {toml(DATABASE)}

[batch]
max_age_s = 0.5

[profiles]
dir = {toml(str(ROOT / "device_profiles"))}

[spool]
dir = {toml(str(DEMO_DIR / "state"))}

[privacy]
hash_key_file = {toml(str(HASH_KEY))}

[http]
port = 0  # any free port: the demo must not collide with a gateway already on 9464
""",
        encoding="utf-8",
    )


def start_simulators(
    args: argparse.Namespace, broker: Mosquitto, hash_key: str
) -> subprocess.Popen[bytes]:
    # Without --start each device's reports end one interval before now, counted back from its
    # share of --messages. So --messages is what fits into the duration at the rate: a larger
    # number would date every reading years back, outside any "last hour" query or dashboard.
    messages = max(1, math.ceil(args.rate * args.duration))
    command = [
        sys.executable, "-m", "simulators", "run",
        "--broker", broker.address, *device_arguments(args.devices),
        "--messages", str(messages), "--rate", str(args.rate), "--duration", str(args.duration),
        "--seed", "1", "--truth", str(TRUTH), "--summary-json", str(SIM_SUMMARY), "--quiet",
        "--qos", "1", "--kind-qos", ",".join(f"{kind}=0" for kind in QOS0_KINDS),
    ]  # fmt: skip
    print(
        f"simulators: {args.devices} devices of each of {len(KINDS)} kinds, {messages:,} "
        f"messages at {args.rate:g} msg/s for up to {args.duration:g} s (Ctrl-C stops early); "
        f"QoS 0: {', '.join(QOS0_KINDS)}; QoS 1: the other kinds",
        file=sys.stderr,
    )
    # The key in the environment, not on the command line where `ps` shows it.
    return start_logged(command, log=SIM_LOG, env={"SIM_PRIVACY_KEY": hash_key})


def device_arguments(devices: int) -> list[str]:
    """--lighting N --water N ... for every simulated kind."""
    arguments = []
    for name in KINDS:
        count = max(1, math.floor(devices * DEVICE_SHARE.get(name, 1.0)))
        arguments += [f"--{name}", str(count)]
    return arguments


def start_logged(
    command: list[str], *, log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    with log.open("ab") as output:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )


def wait_until_subscribed(gateway: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + GATEWAY_START_TIMEOUT_S
    while GATEWAY_READY not in GATEWAY_LOG.read_text(encoding="utf-8", errors="replace"):
        if gateway.poll() is not None:
            raise DemoError(f"gateway exited with {gateway.returncode}:\n{tail(GATEWAY_LOG)}")
        if time.monotonic() > deadline:
            raise DemoError(f"gateway not subscribed after {GATEWAY_START_TIMEOUT_S:.0f} s")
        time.sleep(0.05)
    print(f"gateway running (pid {gateway.pid}), log in {GATEWAY_LOG}", file=sys.stderr)


def stop_process(process: subprocess.Popen[bytes], name: str, sig: signal.Signals) -> None:
    if process.poll() is None:
        process.send_signal(sig)
    try:
        process.wait(PROCESS_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        print(
            f"{name} ignored {sig.name} for {PROCESS_STOP_TIMEOUT_S:.0f} s; killing it",
            file=sys.stderr,
        )
        process.kill()
        process.wait()


# ---- watching ----------------------------------------------------------------------------------


class LogCounter:
    """Counts dead letters and write errors in the gateway log, reading only what is new."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.dead_letters = 0
        self.write_errors = 0

    def update(self) -> None:
        with self.path.open("rb") as log:
            log.seek(self.offset)
            chunk = log.read()
        complete = chunk[: chunk.rfind(b"\n") + 1]  # a half-written line waits for next time
        self.offset += len(complete)
        for line in complete.decode("utf-8", errors="replace").splitlines():
            self.dead_letters += any(mark in line for mark in DEAD_LETTER_MARKS)
            self.write_errors += WRITE_ERROR_MARK in line


class Progress:
    """A table on stderr: readings stored per measurement, and trouble seen in the gateway log.

    On a terminal one row, rewritten in place once a second; in a log, a new row every 5 s.
    """

    columns = ("elapsed", *MEASUREMENTS, "dead letters", "write errors")

    def __init__(self) -> None:
        self.interactive = sys.stderr.isatty()
        self.every_s = PROGRESS_EVERY_S if self.interactive else 5.0
        self.started_s = time.monotonic()
        self.last_shown_s = -math.inf
        self.row_open = False
        self.log = LogCounter(GATEWAY_LOG)
        self.widths = [max(len(name), 9) for name in self.columns]
        header = "  ".join(
            name.rjust(width) for name, width in zip(self.columns, self.widths, strict=True)
        )
        sys.stderr.write(
            f"readings stored in InfluxDB, problems counted in the gateway log:\n{header}\n"
        )

    def update(self, influxd: Influxd, *, force: bool = False) -> dict[str, int]:
        stored = stored_counts(influxd)
        self.log.update()
        now = time.monotonic()
        if force or now - self.last_shown_s >= self.every_s:
            self.last_shown_s = now
            cells = [
                f"{now - self.started_s:.0f} s",
                *(f"{stored[name]:,}" for name in MEASUREMENTS),
                str(self.log.dead_letters),
                str(self.log.write_errors),
            ]
            row = "  ".join(
                cell.rjust(width) for cell, width in zip(cells, self.widths, strict=True)
            )
            if self.interactive:  # a wrapped row could not be rewritten in place
                row = row[: shutil.get_terminal_size().columns - 1]
                sys.stderr.write(f"\r{row}\033[K")
                self.row_open = True
            else:
                sys.stderr.write(f"{row}\n")
            sys.stderr.flush()
        return stored

    def end_row(self) -> None:
        """Keep the last row on screen before anything else is printed."""
        if self.row_open:
            sys.stderr.write("\n")
            self.row_open = False


def watch(
    args: argparse.Namespace,
    progress: Progress,
    *,
    influxd: Influxd,
    gateway: subprocess.Popen[bytes],
    sims: subprocess.Popen[bytes],
    interrupts: Interrupts,
) -> None:
    """Show progress until the simulators finish, Ctrl-C, or they overrun their duration."""
    deadline = time.monotonic() + args.duration + SIM_OVERRUN_S
    try:
        while sims.poll() is None and not interrupts.requested and time.monotonic() < deadline:
            if gateway.poll() is not None:
                raise DemoError(f"gateway exited with {gateway.returncode}:\n{tail(GATEWAY_LOG)}")
            time.sleep(PROGRESS_EVERY_S)
            progress.update(influxd)
    finally:
        progress.end_row()


def wait_for_drain(
    progress: Progress, influxd: Influxd, gateway: subprocess.Popen[bytes], sent: dict[str, int]
) -> None:
    """Wait until InfluxDB holds everything sent, or the count stops growing for a while.

    Also after a first Ctrl-C: the backlog takes seconds, and a second Ctrl-C still aborts.
    """
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    last: dict[str, int] = {}
    last_change_s = time.monotonic()
    try:
        while gateway.poll() is None:
            stored = progress.update(influxd)
            now = time.monotonic()
            if stored != last:
                last, last_change_s = stored, now
            if all(stored[name] >= count for name, count in sent.items()):
                break
            if now - last_change_s > DRAIN_STALL_S or now > deadline:
                break
            time.sleep(PROGRESS_EVERY_S / 4)
        progress.update(influxd, force=True)
    finally:
        progress.end_row()


# ---- InfluxDB and the summary ------------------------------------------------------------------


def stored_counts(influxd: Influxd) -> dict[str, int]:
    counts = dict.fromkeys(MEASUREMENTS, 0)
    for name in MEASUREMENTS:
        # Measurement names are our own constants. COUNT(*) counts each field separately; the
        # largest count is the number of points (exact while some field is in every point, as
        # in the shipped profiles; a lower bound otherwise).
        answer = influxd.query(f"SELECT COUNT(*) FROM {name}", db=DATABASE)  # noqa: S608 - constant
        for series in answer["results"][0].get("series", []):
            counts[name] = max(value or 0 for value in series["values"][0][1:])
    return counts


def sent_counts() -> dict[str, int] | None:
    try:
        summary = json.loads(SIM_SUMMARY.read_text(encoding="utf-8"))
    except FileNotFoundError:
        print(f"the simulators wrote no summary; see {SIM_LOG}", file=sys.stderr)
        return None
    per_measurement: dict[str, int] = summary["per_measurement"]
    return {name: per_measurement.get(name, 0) for name in MEASUREMENTS}


def print_counts(sent: dict[str, int] | None, stored: dict[str, int]) -> None:
    width = max(len(name) for name in (*MEASUREMENTS, "readings")) + 2
    print(f"\n{'readings':<{width}}{'sent':>10}{'stored':>10}")
    for name in (*MEASUREMENTS, "total"):
        stored_n = sum(stored.values()) if name == "total" else stored[name]
        if sent is None:
            sent_text = "?"
        else:
            sent_text = f"{sum(sent.values()) if name == 'total' else sent[name]:,}"
        print(f"{name:<{width}}{sent_text:>10}{stored_n:>10,}")
    if sent is not None and sum(sent.values()) > sum(stored.values()):
        missing = sum(sent.values()) - sum(stored.values())
        print(
            f"{missing:,} readings sent but not in InfluxDB: dropped fields, dead letters, or a "
            f"backlog still in the broker; see {GATEWAY_LOG}"
        )


def print_query(influxd: Influxd, query: str, *, hide_time: bool) -> None:
    print(f"\n> {query}")
    columns, rows = table(influxd.query(query, db=DATABASE))
    if hide_time:  # an aggregate's time is the start of the range, not a reading's time
        keep = [i for i, column in enumerate(columns) if column != "time"]
        columns = [columns[i] for i in keep]
        rows = [[row[i] for i in keep] for row in rows]
    if not rows:
        print("(no rows)")
        return
    widths = [max(len(text) for text in column) for column in zip(columns, *rows, strict=True)]
    for line in (columns, *rows):
        cells = (text.ljust(width) for text, width in zip(line, widths, strict=True))
        print("  ".join(cells).rstrip())


def table(answer: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Columns and formatted rows of an InfluxQL answer; GROUP BY tags become leading columns."""
    columns: list[str] = []
    rows: list[list[str]] = []
    for series in answer["results"][0].get("series", []):
        tags: dict[str, str] = series.get("tags", {})
        columns = [*tags, *series["columns"]]
        for values in series["values"]:
            cells = [
                *tags.values(),
                *(cell(c, v) for c, v in zip(series["columns"], values, strict=True)),
            ]
            rows.append(cells)
    return columns, rows


def cell(column: str, value: object) -> str:
    if column == "time" and isinstance(value, int):  # Influxd.query asks for epoch=ns
        moment = datetime.fromtimestamp(value / 1e9, UTC)
        return moment.isoformat(timespec="seconds").replace("+00:00", "Z")
    if isinstance(value, float):
        return f"{value:.2f}"
    return "" if value is None else str(value)


def print_where_data_is(influxd: Influxd) -> None:
    shown = DEMO_DIR.relative_to(Path.cwd()) if DEMO_DIR.is_relative_to(Path.cwd()) else DEMO_DIR
    print(f"\nData kept in {shown}/: {', '.join(sorted(p.name for p in DEMO_DIR.iterdir()))}")
    if influxd.conf_path.exists():
        print(
            f"To query it again: influxd -config {influxd.conf_path} &\n"
            f"  curl -G {influxd.url}/query --data-urlencode db={DATABASE} "
            "--data-urlencode 'q=SHOW MEASUREMENTS'"
        )


def tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return f"({path} missing)"
    return "\n".join(text.splitlines()[-lines:])


if __name__ == "__main__":
    sys.exit(main())
