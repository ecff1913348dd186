"""In-ground parking bay sensors on LoRaWAN (TTS v3), decoded by a vendor-style JavaScript codec.

One sensor per on-street bay on the market streets. Every five minutes it sends a bay report on
fPort 1: a header (protocol version 1; report type 0 when the bay changed since the last
report, 1 when not), flags (bit 0 a vehicle is over it, bit 1 a magnetometer fault), the
vehicles that arrived since installation (u16, wrapping) and its temperature (i8 degC, 0x80
when the thermistor gave no reading). Twice a day, instead, a device status on fPort 2: the
battery in mV and the firmware version. Bays fill for the morning market and the evening
rush and empty at night. A saturated magnetometer (now and then, next to a parked truck)
cannot tell the occupancy: the codec leaves it out and the gateway stores sensor_fault = 1.
The frame layout is restated here, not imported: the simulator checks the codec, not itself.
"""

from __future__ import annotations

import math
import struct

from simulators.clock import local_hour
from simulators.devices.base import Device, DeviceKind, DeviceSpec, Telemetry
from simulators.devices.tts_uplink import TtsModel, tts_surface

INTERVAL_S = 300
MEASUREMENT = "parking_bay"
APPLICATION_ID = "mh-parking-bays"
BAY_REPORT_PORT = 1
STATUS_PORT = 2
PROTOCOL_VERSION = 1
CHANGED, UNCHANGED = 0, 1
OCCUPIED_BIT, FAULT_BIT = 0x01, 0x02
NO_TEMPERATURE = 0x80
STATUS_EVERY = 144  # twice a day at one report per five minutes
FAULT_P = 0.004
NO_TEMPERATURE_P = 0.003
TURNOVER = 0.35  # chance per report that a bay moves towards how busy the street is
ARRIVALS_WRAP = 1 << 16
FIRMWARE = 0x14  # 1.4
MV_PER_V = 1000


def _busy(hour: float) -> float:
    """0..1: the share of bays taken at this local hour (morning market, evening rush)."""
    market = math.exp(-(((hour - 7.0) / 1.5) ** 2))
    evening = math.exp(-(((hour - 18.5) / 2.0) ** 2))
    return min(0.95, 0.1 + 0.8 * market + 0.6 * evening)


def _road_temperature(hour: float) -> float:
    """degC in the road surface around the sensor: coolest before dawn, warmest mid-afternoon."""
    return 29 + 5 * math.sin(2 * math.pi * (hour - 9) / 24)


class ParkingSensor(TtsModel):
    """One bay: whether a vehicle stands on it, and the sensor's counter, battery and clock."""

    def __init__(self, spec: DeviceSpec) -> None:
        super().__init__(spec, APPLICATION_ID, MEASUREMENT, INTERVAL_S)
        self._occupied = self._rng.random() < 0.2
        self._arrivals = self._rng.randrange(ARRIVALS_WRAP)
        self._battery_mv = self._rng.randrange(3300, 3600)
        self._reports = self._rng.randrange(STATUS_EVERY)

    def next_message(self, sim_time_ms: int) -> Telemetry:
        self._reports += 1
        if self._reports % STATUS_EVERY == 0:
            return self._status(sim_time_ms)
        return self._bay_report(sim_time_ms)

    def _bay_report(self, sim_time_ms: int) -> Telemetry:
        hour = local_hour(sim_time_ms)
        # The truth lists the fields in the profile's order, as the gateway stores them.
        fields: dict[str, int | float] = {}
        if self._rng.random() < FAULT_P:
            # The state is unknown: the sensor keeps it and reports no change.
            report, flags = UNCHANGED, FAULT_BIT
        else:
            report = self._move(_busy(hour))
            flags = OCCUPIED_BIT if self._occupied else 0
            fields["occupied"] = int(self._occupied)
        fields["state_changed"] = int(report == CHANGED)
        fields["sensor_fault"] = int(flags == FAULT_BIT)
        fields["vehicle_arrivals"] = self._arrivals
        temperature = round(_road_temperature(hour) + self._rng.gauss(0, 1))
        if self._rng.random() < NO_TEMPERATURE_P:
            temperature_byte = NO_TEMPERATURE  # left out by the codec: no truth field
        else:
            temperature_byte = temperature & 0xFF
            fields["temperature_c"] = float(temperature)
        header = PROTOCOL_VERSION << 4 | report
        frame = struct.pack(">BBHB", header, flags, self._arrivals, temperature_byte)
        return self._tts.report(sim_time_ms, BAY_REPORT_PORT, frame, fields)

    def _move(self, busy: float) -> int:
        """Maybe a vehicle arrives at a free bay or leaves a taken one; the report type."""
        change_p = TURNOVER * (1 - busy) if self._occupied else TURNOVER * busy
        if self._rng.random() >= change_p:
            return UNCHANGED
        self._occupied = not self._occupied
        if self._occupied:
            self._arrivals = (self._arrivals + 1) % ARRIVALS_WRAP
        return CHANGED

    def _status(self, sim_time_ms: int) -> Telemetry:
        self._battery_mv -= self._rng.choice((0, 0, 1))
        frame = struct.pack(">HB", self._battery_mv, FIRMWARE)
        fields: dict[str, int | float] = {"battery_v": self._battery_mv / MV_PER_V}
        return self._tts.report(sim_time_ms, STATUS_PORT, frame, fields)


def _build(spec: DeviceSpec) -> Device:
    return ParkingSensor(spec)


SURFACE = tts_surface()

KIND = DeviceKind(
    name="parking-sensors",
    label="parking bay sensors on LoRaWAN via TTS v3 (decoded by a vendor-style codec)",
    id_prefix="pk",
    measurement=MEASUREMENT,
    interval_s=INTERVAL_S,
    build=_build,
    surface=SURFACE,
)
