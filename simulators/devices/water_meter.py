"""Household ultrasonic water meters on LoRaWAN (TTS v3) with frames chosen by port and
report type.

Every half hour the meter sends an index frame on fPort 1 (report type 01: its clock, the BCD
volume register in litres, the flow in L/h, signed, and the battery in %); once a day,
instead, a status frame on fPort 2 (type 03: clock, battery voltage, pit temperature); and
when it detects a leak (water running all night), backflow or a magnet on its case, an alarm
frame (fPort 1, report type 02). The clock counts seconds since 2000-01-01 in Vietnamese local
time, and the readings are stamped with it. Now and then the register cannot be read and the
meter sends ff ff ff ff, which the gateway drops (sentinel) while keeping the flow and the
battery.
"""

from __future__ import annotations

import math
import struct

from simulators.clock import local_hour
from simulators.devices.base import Device, DeviceKind, DeviceSpec, Telemetry
from simulators.devices.tts_uplink import TtsModel, tts_surface
from simulators.surface import EnvelopeFrame, TimeSlot

INTERVAL_S = 1800
MEASUREMENT = "water_meter"
APPLICATION_ID = "mh-water-meters"
# 2000-01-01T00:00:00 as Unix seconds; the meter's clock shows Vietnamese wall time (UTC+7,
# no daylight saving since 1975).
CLOCK_EPOCH_S = 946_684_800
LOCAL_OFFSET_S = 7 * 3600
STATUS_EVERY = 48
ALARM_P = 0.01
UNREADABLE_P = 0.003
UNREADABLE = b"\xff\xff\xff\xff"
L_PER_M3 = 1000
MV_PER_V = 1000
NS_PER_S = 10**9


def _bcd(value: int, digits: int) -> bytes:
    return bytes.fromhex(f"{value:0{digits}d}")


class WaterMeter(TtsModel):
    """One household meter: its register, its clock, and the alarms it may raise."""

    def __init__(self, spec: DeviceSpec) -> None:
        super().__init__(spec, APPLICATION_ID, MEASUREMENT, INTERVAL_S)
        self._volume_l = self._rng.randrange(10_000, 900_000)
        self._household_lph = self._rng.uniform(10.0, 40.0)
        self._battery_mv = self._rng.randrange(3400, 3600)
        self._reports = self._rng.randrange(STATUS_EVERY)

    def next_message(self, sim_time_ms: int) -> Telemetry:
        clock_s = sim_time_ms // 1000
        device_clock = struct.pack(">I", clock_s + LOCAL_OFFSET_S - CLOCK_EPOCH_S)
        self._reports += 1
        roll = self._rng.random()
        if roll < ALARM_P:
            bits = 1 << self._rng.randrange(3)
            frame = b"\x02" + device_clock + bytes([bits])
            fields: dict[str, int | float] = {
                "leak_alarm": bits & 1,
                "backflow_alarm": bits >> 1 & 1,
                "tamper_alarm": bits >> 2 & 1,
            }
            return self._report(sim_time_ms, 1, frame, fields)
        if self._reports % STATUS_EVERY == 0:
            temperature = round(27 + 3 * math.sin(2 * math.pi * (local_hour(sim_time_ms) - 9) / 24))
            frame = b"\x03" + device_clock + struct.pack(">Hb", self._battery_mv, temperature)
            fields = {"battery_v": self._battery_mv / MV_PER_V, "temperature_c": float(temperature)}
            self._battery_mv -= self._rng.choice((0, 0, 1))
            return self._report(sim_time_ms, 2, frame, fields)
        return self._index(sim_time_ms, device_clock)

    def _index(self, sim_time_ms: int, device_clock: bytes) -> Telemetry:
        hour = local_hour(sim_time_ms)
        usage = 0.2 + math.exp(-(((hour - 6.5) / 1.5) ** 2)) + math.exp(-(((hour - 19) / 2) ** 2))
        flow_lph = round(self._household_lph * usage * self._rng.uniform(0.5, 1.5))
        if self._rng.random() < 0.02:  # a pressure drop in the street pulls water back
            flow_lph = -self._rng.randrange(5, 60)
        self._volume_l = max(0, self._volume_l + flow_lph)
        battery_pct = min(100, max(0, (self._battery_mv - 3000) // 6))
        fields: dict[str, int | float] = {}
        register = _bcd(self._volume_l, 8)
        if self._rng.random() < UNREADABLE_P:
            register = UNREADABLE  # dropped by the gateway (sentinel): no truth field
        else:
            fields["total_m3"] = self._volume_l / L_PER_M3
        fields["flow_m3h"] = flow_lph / L_PER_M3
        fields["battery_pct"] = battery_pct
        frame = b"\x01" + device_clock + register + struct.pack(">hB", flow_lph, battery_pct)
        return self._report(sim_time_ms, 1, frame, fields)

    def _report(
        self, sim_time_ms: int, f_port: int, frame: bytes, fields: dict[str, int | float]
    ) -> Telemetry:
        """Readings are stamped with the meter's clock: whole seconds of the wake-up."""
        clock_ns = sim_time_ms // 1000 * NS_PER_S
        return self._tts.report(sim_time_ms, f_port, frame, fields, clock_ns)


def _build(spec: DeviceSpec) -> Device:
    return WaterMeter(spec)


# The meter stamps its readings with its own clock, inside the frame.
SURFACE = tts_surface(
    TimeSlot(EnvelopeFrame(("uplink_message", "frm_payload"), 1, ">I"), "local_s2000")
)

KIND = DeviceKind(
    name="water-meters",
    label="household water meters on LoRaWAN via TTS v3 (frames by port and report type)",
    id_prefix="hm",
    measurement=MEASUREMENT,
    interval_s=INTERVAL_S,
    build=_build,
    surface=SURFACE,
)
