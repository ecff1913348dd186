"""River and canal level probes on LoRaWAN (TTS v3) with Decentlab-style flagged groups.

Every ten minutes the probe sends a header (protocol version 2, its serial, a flags word) and
one group per sensor that reported, in flag-bit order: level and water temperature (bit 0),
conductivity (bit 1, every third report), battery (bit 2, every sixth). A missing group
shifts the ones after it. Probes with firmware 1.4 (about half) append a status word, the
probe's tilt (signed, 0.1 degree) and an error code, when it fits. The level follows the tide
of the Red River delta (about 12.4 h); salt water pushed up on the flood raises conductivity.
An open thermistor sends 7fff, which the gateway drops (sentinel).
"""

from __future__ import annotations

import math
import struct

from simulators.devices.base import Device, DeviceKind, DeviceSpec, Telemetry
from simulators.devices.tts_uplink import TtsModel, tts_surface

INTERVAL_S = 600
MEASUREMENT = "river_level"
APPLICATION_ID = "mh-river-probes"
F_PORT = 2
VERSION = 2
TIDE_PERIOD_S = 12.42 * 3600
CONDUCTIVITY_EVERY = 3
BATTERY_EVERY = 6
LEVEL_FAULT_P = 0.003  # the pressure cell does not answer: no level group
OPEN_THERMISTOR_P = 0.004
OPEN_THERMISTOR = 0x7FFF
TILT_BITS = 12
MM_PER_M = 1000
MV_PER_V = 1000
CENTI = 100
DECI = 10


class RiverProbe(TtsModel):
    """One gauge: the tide at its site and the groups its sensors fill in."""

    def __init__(self, spec: DeviceSpec) -> None:
        super().__init__(spec, APPLICATION_ID, MEASUREMENT, INTERVAL_S)
        self._serial = self._rng.randrange(0x10000)
        self._mean_level_m = self._rng.uniform(1.5, 3.0)
        self._tide_phase = self._rng.uniform(0, 2 * math.pi)
        self._has_status_word = self._rng.random() < 0.5
        self._tilt_dd = self._rng.randrange(-30, 31)
        self._battery_mv = self._rng.randrange(3300, 3600)
        self._reports = self._rng.randrange(CONDUCTIVITY_EVERY * BATTERY_EVERY)

    def next_message(self, sim_time_ms: int) -> Telemetry:
        self._reports += 1
        tide = math.sin(2 * math.pi * sim_time_ms / 1000 / TIDE_PERIOD_S + self._tide_phase)
        flags, groups = 0, b""
        fields: dict[str, int | float] = {}
        if self._rng.random() >= LEVEL_FAULT_P:
            flags |= 1
            level_mm = round(MM_PER_M * (self._mean_level_m + 0.8 * tide))
            level_mm += round(self._rng.gauss(0, 5))
            temp_cd = round(CENTI * (26.0 + self._rng.gauss(0, 0.5)))
            fields["level_m"] = level_mm / MM_PER_M
            if self._rng.random() < OPEN_THERMISTOR_P:
                temp_cd = OPEN_THERMISTOR  # dropped by the gateway (sentinel): no truth field
            else:
                fields["temperature_c"] = temp_cd / CENTI
            groups += struct.pack(">Hh", level_mm, temp_cd)
        if self._reports % CONDUCTIVITY_EVERY == 0:
            flags |= 2
            conductivity = round(400 + 300 * max(0.0, tide) + self._rng.gauss(0, 10))
            fields["conductivity_uscm"] = float(conductivity)
            groups += conductivity.to_bytes(3, "big")
        if self._reports % BATTERY_EVERY == 0:
            flags |= 4
            fields["battery_v"] = self._battery_mv / MV_PER_V
            groups += struct.pack(">H", self._battery_mv)
        frame = struct.pack(">BHH", VERSION, self._serial, flags) + groups
        if self._has_status_word:
            self._tilt_dd += self._rng.choice((-1, 0, 0, 0, 1))
            tilt_bits = self._tilt_dd & ((1 << TILT_BITS) - 1)  # two's complement in 12 bits
            frame += struct.pack(">H", tilt_bits)
            fields["tilt_deg"] = self._tilt_dd / DECI
            fields["error_code"] = 0
        return self._tts.report(sim_time_ms, F_PORT, frame, fields)


def _build(spec: DeviceSpec) -> Device:
    return RiverProbe(spec)


SURFACE = tts_surface()

KIND = DeviceKind(
    name="river-probes",
    label="river level probes on LoRaWAN via TTS v3 (groups behind presence flags)",
    id_prefix="rv",
    measurement=MEASUREMENT,
    interval_s=INTERVAL_S,
    build=_build,
    surface=SURFACE,
)
