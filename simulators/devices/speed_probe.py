"""Broadband measurement probe: a small box on a mobile SIM (4G or 5G) or a fibre line (FTTH)
that runs a speed test every 15 minutes and publishes one CSV line.

Each probe has its own line: its typical download speed scatters around the town plan's
targets, 36 Mb/s for mobile and 91 Mb/s for fixed broadband (4G lines between about 25 and
50 Mb/s, 5G well above the target, fibre lines measuring 80-97 % of a 100 or 150 Mb/s plan).
Every test varies around the line's figures, and the evening peak (around 21:00 local) slows
mobile cells more than fibre. A 5G probe sometimes falls back to 4G for a test, and the CSV
says so: technology is whatever the modem was attached to. Rarely a test fails (no server
reachable) and reports empty throughput cells with 100 % loss.

A probe is installed in one village (thôn, or khu phố in the town's built-up part) of its
ward and publishes under city/connectivity/<ward>/<village>/<probe>/speedtest, as an operator
lays out topics by place, so the plan's per-village coverage can be read from the data.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from simulators.clock import NS_PER_S, local_hour, utc_rfc3339
from simulators.devices.base import Device, DeviceKind, DeviceSpec, Telemetry
from simulators.surface import Column, FieldEdit, PayloadSurface, TimeSlot
from simulators.truth import TruthReading

INTERVAL_S = 900
MEASUREMENT = "broadband_speed"

TARGET_MOBILE_MBPS = 36.0
TARGET_FIXED_MBPS = 91.0
TECHNOLOGY_SHARES = {"4G": 0.45, "5G": 0.2, "FTTH": 0.35}
MOBILE_OPERATORS = {"viettel": 0.5, "vinaphone": 0.3, "mobifone": 0.2}
FIXED_OPERATORS = {"viettel": 0.4, "vnpt": 0.35, "fpt": 0.25}
SERVER_IDS = {"viettel": 9903, "vinaphone": 17758, "mobifone": 27601, "vnpt": 17757, "fpt": 2515}
FIBRE_PLANS_MBPS = (100.0, 150.0)
FALLBACK_TO_4G_P = 0.08
FAILED_TEST_P = 0.004
EVENING_PEAK_H, EVENING_PEAK_WIDTH_H = 21.0, 1.5
START_JITTER_S = 30  # the probe's scheduler starts a test up to half a minute late
BPS_PER_MBPS = 1_000_000

# Villages (thôn, khu phố) of each ward of Mỹ Hào as ASCII slugs, four a ward: a small stand-in
# for the town's register (dashboards/report/villages.py is the report's copy of it).
VILLAGES = {
    "ban-yen-nhan": ("ban", "yen-nhan", "pho-noi", "nghia"),
    "di-su": ("di-su", "phuc-bo", "hoang-xa", "ngo-xa"),
    "phan-dinh-phung": ("xuan-dao", "tien-phong", "lac-cau", "phuc-lam"),
    "nhan-hoa": ("lo-xa", "van-xa", "vinh-xa", "tu-ha"),
    "bach-sam": ("bach-sam", "ngoc-lich", "tra-phuong", "dong-xa"),
    "minh-duc": ("dong-mai", "minh-khai", "ha-dong", "quang-trung"),
    "phung-chi-kien": ("phu-huu", "man-xuyen", "trung-hau", "quan-do"),
}


@dataclass(frozen=True, slots=True)
class LineFigures:
    """A line's typical figures for one access technology."""

    download_mbps: float
    upload_ratio: float
    latency_ms: float
    jitter_ms: float
    spread: float  # sigma of the log-normal variation between tests
    evening_slowdown: float  # share of throughput lost at the height of the evening peak
    loss_p: float  # chance that a test sees some packet loss


class SpeedProbe:
    """One probe on one access line."""

    def __init__(self, spec: DeviceSpec) -> None:
        self._rng = spec.rng
        self.device_id = spec.device_id
        self.interval_s = INTERVAL_S
        self._district = spec.district
        rng = self._rng
        self.technology = _choose(rng, TECHNOLOGY_SHARES)
        fixed = self.technology == "FTTH"
        self.operator = _choose(rng, FIXED_OPERATORS if fixed else MOBILE_OPERATORS)
        self._4g = _line_figures(rng, "4G")
        self._line = self._4g if self.technology == "4G" else _line_figures(rng, self.technology)
        self.village = rng.choice(VILLAGES[spec.district])  # drawn last: the line is as before
        place = f"{spec.district}/{self.village}/{spec.device_id}"
        self.topic = f"city/connectivity/{place}/speedtest"

    def next_message(self, sim_time_ms: int) -> Telemetry:
        rng = self._rng
        ts_s = sim_time_ms // 1000 + rng.randrange(START_JITTER_S)
        technology, line = self.technology, self._line
        if technology == "5G" and rng.random() < FALLBACK_TO_4G_P:
            technology, line = "4G", self._4g
        hours_from_peak = local_hour(ts_s * 1000) - EVENING_PEAK_H
        peak = math.exp(-0.5 * (hours_from_peak / EVENING_PEAK_WIDTH_H) ** 2)
        cells = [utc_rfc3339(ts_s * 1_000_000), technology, self.operator]
        cells.append(str(SERVER_IDS[self.operator]))
        if rng.random() < FAILED_TEST_P:
            cells += ["", "", "", "", "100.0"]
        else:
            cells += self._test(line, peak)
        return Telemetry(",".join(cells).encode(), [self._reading(ts_s, cells)])

    def _test(self, line: LineFigures, peak: float) -> list[str]:
        rng = self._rng
        speed = (1 - line.evening_slowdown * peak) * math.exp(rng.gauss(0.0, line.spread))
        download_bps = round(line.download_mbps * speed * 1e6)
        upload_speed = speed * math.exp(rng.gauss(0.0, line.spread / 2))
        upload_bps = round(line.download_mbps * line.upload_ratio * upload_speed * 1e6)
        slower = (1 + 0.4 * peak) * math.exp(rng.gauss(0.0, 0.15))
        latency_ms = round(line.latency_ms * slower, 1)
        jitter_ms = round(line.jitter_ms * slower * math.exp(rng.gauss(0.0, 0.3)), 1)
        loss_pct = round(rng.uniform(0.1, 1.5), 1) if rng.random() < line.loss_p else 0.0
        # repr() is the shortest text that reads back as the same float, as the gateway will.
        return [str(download_bps), str(upload_bps), *map(repr, (latency_ms, jitter_ms, loss_pct))]

    def _reading(self, ts_s: int, cells: list[str]) -> TruthReading:
        technology, download, upload, latency, jitter, loss = (cells[1], *cells[4:])
        fields: dict[str, int | float] = {}
        if download:
            # The decimal the conversion means (38512345 bit/s = 38.512345 Mb/s).
            fields["download_mbps"] = int(download) / BPS_PER_MBPS
            fields["upload_mbps"] = int(upload) / BPS_PER_MBPS
            fields["latency_ms"] = float(latency)
            fields["jitter_ms"] = float(jitter)
        fields["packet_loss_pct"] = float(loss)
        return TruthReading(
            measurement=MEASUREMENT,
            device_id=self.device_id,
            tags={
                "district": self._district,
                "village": self.village,
                "device_id": self.device_id,
                "technology": technology,
                "operator": self.operator,
            },
            time_ns=ts_s * NS_PER_S,
            fields=fields,
        )


def _line_figures(rng: random.Random, technology: str) -> LineFigures:
    if technology == "FTTH":
        plan_mbps = FIBRE_PLANS_MBPS[0] if rng.random() < 0.7 else FIBRE_PLANS_MBPS[1]
        return LineFigures(
            download_mbps=plan_mbps * rng.uniform(0.8, 0.97),
            upload_ratio=rng.uniform(0.9, 1.0),  # GPON plans here are near-symmetric
            latency_ms=rng.uniform(6.0, 12.0),
            jitter_ms=rng.uniform(0.5, 2.0),
            spread=0.06,
            evening_slowdown=0.2,
            loss_p=0.02,
        )
    if technology == "5G":
        return LineFigures(
            download_mbps=TARGET_MOBILE_MBPS * rng.uniform(2.5, 6.0),
            upload_ratio=rng.uniform(0.15, 0.3),
            latency_ms=rng.uniform(15.0, 25.0),
            jitter_ms=rng.uniform(2.0, 5.0),
            spread=0.25,
            evening_slowdown=0.3,
            loss_p=0.04,
        )
    return LineFigures(
        download_mbps=TARGET_MOBILE_MBPS * rng.uniform(0.7, 1.4),
        upload_ratio=rng.uniform(0.3, 0.45),
        latency_ms=rng.uniform(28.0, 45.0),
        jitter_ms=rng.uniform(4.0, 9.0),
        spread=0.2,
        evening_slowdown=0.35,
        loss_p=0.06,
    )


def _choose(rng: random.Random, shares: dict[str, float]) -> str:
    return rng.choices(list(shares), weights=list(shares.values()))[0]


def _build(spec: DeviceSpec) -> Device:
    return SpeedProbe(spec)


# Columns: ts, technology, operator, server, download, upload, latency, jitter, loss.
SURFACE = PayloadSurface(
    format="csv",
    time=TimeSlot(Column(0), "iso_utc"),
    out_of_range=(
        FieldEdit(Column(8), "packet_loss_pct", "120.0"),  # max 100 %
        FieldEdit(Column(6), "latency_ms", "-5.0"),  # min 0
    ),
    wrong_type=(
        FieldEdit(Column(6), "latency_ms", "timeout"),
        FieldEdit(Column(4), "download_mbps", "fast"),
    ),
)

KIND = DeviceKind(
    name="speed-probes",
    label="broadband speed-test probes on 4G, 5G or FTTH",
    id_prefix="sp",
    measurement=MEASUREMENT,
    interval_s=INTERVAL_S,
    build=_build,
    surface=SURFACE,
)
