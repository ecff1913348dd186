"""Roadside air-quality stations on LoRaWAN (TTS v3) with a Milesight-style channel stream.

Each report is a run of (channel, type, value) entries, little-endian: temperature, humidity,
CO2, pressure and PM2.5 every 15 minutes, the battery every eighth report. After a power-on
(after a brown-out, now and then) the station first sends its device
information on channel ff, which the gateway must skip, and its CO2 cell needs two reports to
warm up, sending ffff ("no reading") meanwhile, which the gateway drops. Temperature follows
the day; CO2 and PM2.5 follow the traffic peaks.
"""

from __future__ import annotations

import math
import struct

from simulators.clock import local_hour
from simulators.devices.base import Device, DeviceKind, DeviceSpec, Telemetry
from simulators.devices.tts_uplink import TtsModel, tts_surface

INTERVAL_S = 900
MEASUREMENT = "air_quality"
APPLICATION_ID = "mh-air-quality"
F_PORT = 5
BATTERY_EVERY = 8
BROWN_OUT_P = 0.01
WARM_UP_REPORTS = 2
NO_READING_U16 = 0xFFFF
DEVICE_INFO = bytes.fromhex("ff0101" + "ff091100" + "ff0a0142" + "ff0bff")
DECI = 10


def _rush(hour: float) -> float:
    """0..1: how much traffic passes at this local hour (peaks 7:30 and 17:30)."""
    return math.exp(-(((hour - 7.5) / 1.2) ** 2)) + math.exp(-(((hour - 17.5) / 1.4) ** 2))


class AirStation(TtsModel):
    """One station; `next_message` builds its frame entry by entry, as the device does."""

    def __init__(self, spec: DeviceSpec) -> None:
        super().__init__(spec, APPLICATION_ID, MEASUREMENT, INTERVAL_S)
        # Powered on long before the simulated span starts (a brown-out restarts it).
        self._reports_since_power_on = WARM_UP_REPORTS + self._rng.randrange(1000)
        self._battery_pct = self._rng.randrange(70, 101)
        self._pressure_dhpa = self._rng.randrange(10080, 10140)

    def next_message(self, sim_time_ms: int) -> Telemetry:
        if self._rng.random() < BROWN_OUT_P:
            self._reports_since_power_on = 0
        hour = local_hour(sim_time_ms)
        fields: dict[str, int | float] = {}
        frame = DEVICE_INFO if self._reports_since_power_on == 0 else b""
        temp_dc = round(DECI * (28.0 + 4.0 * math.sin(2 * math.pi * (hour - 9.0) / 24)))
        temp_dc += round(self._rng.gauss(0, 3))
        frame += bytes.fromhex("0367") + struct.pack("<h", temp_dc)
        fields["temperature_c"] = temp_dc / DECI
        humidity_half = min(200, max(60, round(2 * (78 - 1.5 * (temp_dc / DECI - 28)))))
        frame += bytes.fromhex("0468") + bytes([humidity_half])
        fields["humidity_pct"] = humidity_half / 2
        co2 = round(420 + 380 * _rush(hour) + self._rng.gauss(0, 15))
        if self._reports_since_power_on < WARM_UP_REPORTS:
            co2 = NO_READING_U16  # dropped by the gateway (sentinel): no truth field
        else:
            fields["co2_ppm"] = co2
        frame += bytes.fromhex("057d") + struct.pack("<H", co2)
        self._pressure_dhpa += self._rng.choice((-1, 0, 0, 1))
        frame += bytes.fromhex("0673") + struct.pack("<H", self._pressure_dhpa)
        fields["pressure_hpa"] = self._pressure_dhpa / DECI
        pm25 = max(0, round(25 + 45 * _rush(hour) + self._rng.gauss(0, 4)))
        frame += bytes.fromhex("077d") + struct.pack("<H", pm25)
        fields["pm25_ugm3"] = pm25
        if self._tts.f_cnt % BATTERY_EVERY == 0:
            frame += bytes.fromhex("0175") + bytes([self._battery_pct])
            fields["battery_pct"] = self._battery_pct
        self._reports_since_power_on += 1
        return self._tts.report(sim_time_ms, F_PORT, frame, fields)


def _build(spec: DeviceSpec) -> Device:
    return AirStation(spec)


SURFACE = tts_surface()

KIND = DeviceKind(
    name="air-stations",
    label="roadside air-quality stations on LoRaWAN via TTS v3 (channel/type frames)",
    id_prefix="aq",
    measurement=MEASUREMENT,
    interval_s=INTERVAL_S,
    build=_build,
    surface=SURFACE,
)
