"""How much of the LoRaWAN device repository the gateway decodes exactly: an import sample.

    .venv/bin/python -m benchmarks.lorawan_import /path/to/lorawan-devices [--devices 40]

For a fixed sample of devices across vendors (the first ones of each vendor's index whose codec
has examples and whose firmware versions and regions share one codec, two per vendor at most),
it runs `gateway profiles import` into a temporary folder and then, per repository example:

- codec: the vendor's codec in the gateway's sandbox gives exactly the example's expected
  `data` (Python equality over the decoded JSON, null members counted as absent), or a
  codec_error where the example expects `errors`;
- golden: the imported golden vector passes (`gateway profiles test --golden`), i.e. the
  codec's output, mapped by the proposed profile, is the line protocol of the expected data.

Prints one line per device and the two shares. Reads the checkout only; writes to a temp dir.
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gateway.cli import golden_failures, read_golden
from gateway.errors import ConfigError, DecodeError, GatewayError
from gateway.operations.profile_import import import_device
from gateway.profiles.registry import load_directory
from gateway.stages.codec import CodecLoadError, JavascriptCodec


@dataclass
class Tally:
    examples: int = 0
    codec_exact: int = 0
    golden_passed: int = 0


def sample(checkout: Path, wanted: int, per_vendor: int = 2) -> list[str]:
    """vendor/device names, in a stable order, spread over vendors."""
    chosen: list[str] = []
    for vendor in sorted(p for p in (checkout / "vendor").iterdir() if p.is_dir()):
        index = vendor / "index.yaml"
        if not index.exists():
            continue
        devices = (yaml.safe_load(index.read_text(encoding="utf-8")) or {}).get("endDevices") or []
        taken = 0
        for device in devices:
            if taken == per_vendor or len(chosen) == wanted:
                break
            if _has_examples(checkout, f"{vendor.name}/{device}"):
                chosen.append(f"{vendor.name}/{device}")
                taken += 1
    return chosen


def _has_examples(checkout: Path, device: str) -> bool:
    try:
        with tempfile.TemporaryDirectory() as scratch:
            return bool(import_device(checkout, device, Path(scratch)).examples)
    except (GatewayError, OSError, KeyError, TypeError, ValueError):
        return False  # several codecs, no codec, a broken file: not in the sample


def codec_matches(codec: JavascriptCodec, example: dict[str, Any]) -> bool:
    given, wanted = example.get("input") or {}, example.get("output") or {}
    try:
        result = codec.decode(bytes(given["bytes"]), int(given["fPort"]))
    except DecodeError as exc:
        return bool(wanted.get("errors")) and exc.reason == "codec_error"
    return not wanted.get("errors") and _present(result.data) == _present(wanted.get("data"))


def _present(value: Any) -> Any:
    """The value without null members: to the gateway a null and an absent key are the same
    (the field is missing), and JSON.stringify leaves out a codec's `undefined` that The Things
    Stack's engine writes as null."""
    if isinstance(value, dict):
        return {key: _present(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_present(item) for item in value]
    return value


def measure(checkout: Path, device: str, tally: Tally) -> str:
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch)
        report = import_device(checkout, device, out)
        examples = report.examples
        codec = JavascriptCodec(report.codec.read_text(encoding="utf-8"), report.codec.name)
        exact = sum(codec_matches(codec, example) for example in examples)
        registry = load_directory(out)
        cases = read_golden(report.golden)
        passed = sum(not golden_failures(registry, None, case) for case in cases)
    tally.examples += len(examples)
    tally.codec_exact += exact
    tally.golden_passed += passed
    return f"{device:<45} examples {len(examples):>3}  codec exact {exact:>3}  golden {passed:>3}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkout", type=Path, help="TheThingsNetwork/lorawan-devices checkout")
    parser.add_argument("--devices", type=int, default=40, help="sample size (default 40)")
    parser.add_argument("--per-vendor", type=int, default=2, help="devices per vendor at most")
    args = parser.parse_args()
    tally = Tally()
    devices = sample(args.checkout, args.devices, args.per_vendor)
    for device in devices:
        try:
            print(measure(args.checkout, device, tally), flush=True)
        except (ConfigError, CodecLoadError) as exc:
            print(f"{device:<45} not imported: {exc}")
    vendors = len({device.split("/")[0] for device in devices})
    share = tally.codec_exact / max(tally.examples, 1)
    golden = tally.golden_passed / max(tally.examples, 1)
    print(
        f"\n{len(devices)} devices from {vendors} vendors, {tally.examples} repository examples: "
        f"codec output exactly as expected {tally.codec_exact} ({share:.1%}); "
        f"golden vectors passing {tally.golden_passed} ({golden:.1%})"
    )


if __name__ == "__main__":
    main()
