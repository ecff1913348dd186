"""Municipal ultrasonic water meters on LoRaWAN behind ChirpStack v4, frames chosen by fPort.

A second meter model next to the TTS one (water_meter.py), as a town that buys from two
vendors has: it reports to ChirpStack, which publishes an "up" event per uplink on
application/{application id}/device/{DevEUI}/event/up with the frame in base64, the DevEUI and
the district (a device tag in ChirpStack) in `deviceInfo`, and every gateway that heard the
frame in `rxInfo`. Meters sit in street pits, so two gateways often hear one; the gateway stores
the best RSSI and SNR. The frame is little-endian and its kind is told by the port alone:

    fPort 100, every hour:  <u32 volume, L> <i16 flow, L/h> <u8 battery %> <u8 alarm bits:
                            0 leak (water running all night), 1 backflow, 2 tamper (a magnet)>
    fPort 103, once a day:  <u16 battery, mV> <i8 pit temperature, degC>, instead of the index

When air in the pipe stops the ultrasonic cell from measuring, the volume reads ff ff ff ff:
the gateway drops it (sentinel) and keeps the flow, battery and alarms. The meter has no clock:
its readings carry ChirpStack's receive time. It is named by its DevEUI (lm-0001 is
0004a30b00000001), which is also the device_id tag the profile reads from the event.
"""

from __future__ import annotations

import math
import struct

import orjson

from simulators.clock import local_hour, utc_rfc3339
from simulators.devices.base import Device, DeviceKind, DeviceSpec, Telemetry
from simulators.devices.chirpstack_uplink import (
    GATEWAY_IDS,
    ChirpstackApplication,
    ChirpstackDevice,
)
from simulators.surface import FieldEdit, JsonPath, PayloadSurface, TimeSlot
from simulators.truth import TruthReading

INTERVAL_S = 3600
MEASUREMENT = "water_meter"
INDEX_PORT = 100
STATUS_PORT = 103
INDEX = struct.Struct("<IhBB")  # volume L, flow L/h, battery %, alarm bits
STATUS = struct.Struct("<Hb")  # battery mV, pit temperature degC
NO_VOLUME = 0xFFFF_FFFF
LEAK, BACKFLOW, TAMPER = 0x01, 0x02, 0x04
STATUS_EVERY = 24
UNMEASURABLE_P = 0.005
BACKFLOW_P = 0.02
TAMPER_P = 0.002
LEAK_ONSET_P = 0.003  # per hour: a dripping cistern or a burst pipe behind the meter
LEAK_END_P = 0.05  # per hour: someone fixes it
LEAK_LPH = (20, 90)
TWO_GATEWAYS_P = 0.4
LORA_RSSI_DBM = (-108.0, 7.0)  # from a street pit, under a cast-iron lid
LORA_SNR_DB = (2.0, 4.0)
SPREADING_FACTOR = 9  # a pit under a cast-iron lid needs a slower data rate
# The town's water-meter application and the meters' device profile in ChirpStack: the profile
# tells these events from the streetlights' on the same topic (match.content).
APPLICATION = ChirpstackApplication(
    application_id="5b7e1c2a-94d3-4c0f-8a61-2f0d9e4b7c13",
    application_name="water-meters",
    device_profile_id="0b9d3f6e-2c47-4e8a-b1d5-7f3a9c2e6d80",
    device_profile_name="wm-ultrasonic-dn15",
    dev_eui_prefix="0004a30b00",
)
L_PER_M3 = 1000
MV_PER_V = 1000
NS_PER_US = 1000


class LorawanMeter:
    """One meter: its register, its battery, a leak behind it now and then, its radio link."""

    def __init__(self, spec: DeviceSpec) -> None:
        self._rng = spec.rng
        self._node = ChirpstackDevice(spec, APPLICATION)
        self.device_id = self._node.device_id
        self.topic = self._node.topic
        self.interval_s = INTERVAL_S
        self._volume_l = self._rng.randrange(5_000, 2_000_000)
        self._household_lph = self._rng.uniform(8.0, 35.0)
        self._battery_mv = self._rng.randrange(3450, 3650)
        self._leak_lph = 0
        self._reports = self._rng.randrange(STATUS_EVERY)

    def next_message(self, sim_time_ms: int) -> Telemetry:
        self._reports += 1
        if self._reports % STATUS_EVERY == 0:
            hour = local_hour(sim_time_ms)
            temperature = round(26 + 3 * math.sin(2 * math.pi * (hour - 9) / 24))
            frame = STATUS.pack(self._battery_mv, temperature)
            fields: dict[str, int | float] = {
                "battery_v": self._battery_mv / MV_PER_V,
                "temperature_c": float(temperature),
            }
            self._battery_mv -= self._rng.choice((0, 0, 1))
            return self._uplink(sim_time_ms, STATUS_PORT, frame, fields)
        return self._index(sim_time_ms)

    def _index(self, sim_time_ms: int) -> Telemetry:
        hour = local_hour(sim_time_ms)
        usage = 0.2 + math.exp(-(((hour - 6.5) / 1.5) ** 2)) + math.exp(-(((hour - 19) / 2) ** 2))
        flow_lph = round(self._household_lph * usage * self._rng.uniform(0.5, 1.5))
        self._update_leak()
        flow_lph += self._leak_lph
        alarms = LEAK if self._leak_lph else 0
        if self._rng.random() < BACKFLOW_P:  # a pressure drop in the street pulls water back
            flow_lph = -self._rng.randrange(5, 60)
            alarms |= BACKFLOW
        if self._rng.random() < TAMPER_P:
            alarms |= TAMPER
        self._volume_l = max(0, self._volume_l + flow_lph)
        battery_pct = min(100, max(0, (self._battery_mv - 3000) // 6))
        fields: dict[str, int | float] = {}
        volume = self._volume_l
        if self._rng.random() < UNMEASURABLE_P:
            volume = NO_VOLUME  # dropped by the gateway (sentinel): no truth field
        else:
            fields["total_m3"] = self._volume_l / L_PER_M3
        fields["flow_m3h"] = flow_lph / L_PER_M3
        fields["battery_pct"] = battery_pct
        fields["leak_alarm"] = alarms & LEAK
        fields["backflow_alarm"] = alarms >> 1 & 1
        fields["tamper_alarm"] = alarms >> 2 & 1
        frame = INDEX.pack(volume, flow_lph, battery_pct, alarms)
        return self._uplink(sim_time_ms, INDEX_PORT, frame, fields)

    def _update_leak(self) -> None:
        if self._leak_lph and self._rng.random() < LEAK_END_P:
            self._leak_lph = 0
        elif not self._leak_lph and self._rng.random() < LEAK_ONSET_P:
            self._leak_lph = self._rng.randrange(*LEAK_LPH)

    def _uplink(
        self, sim_time_ms: int, f_port: int, frame: bytes, fields: dict[str, int | float]
    ) -> Telemetry:
        """The event and its truth: `fields` plus the best gateway's radio values, stamped with
        ChirpStack's receive time, a moment after the meter's wake-up."""
        received_us = sim_time_ms * 1000 + self._rng.randrange(300_000, 2_000_000)
        heard = len(GATEWAY_IDS) if self._rng.random() < TWO_GATEWAYS_P else 1
        radio = [
            (
                round(min(max(self._rng.gauss(*LORA_RSSI_DBM), -130.0), -75.0)),
                round(4 * min(max(self._rng.gauss(*LORA_SNR_DB), -18.0), 12.0)) / 4,
            )
            for _ in range(heard)
        ]
        time = utc_rfc3339(received_us)
        event = self._node.event(time, f_port, frame, radio, SPREADING_FACTOR)
        fields["rssi_dbm"] = max(rssi for rssi, _ in radio)
        fields["snr_db"] = max(snr for _, snr in radio)
        reading = TruthReading(
            measurement=MEASUREMENT,
            device_id=self.device_id,
            tags=self._node.tags,
            time_ns=received_us * NS_PER_US,
            fields=fields,
        )
        return Telemetry(orjson.dumps(event), [reading])


def _build(spec: DeviceSpec) -> Device:
    return LorawanMeter(spec)


# The profile stores the best RSSI over rxInfo[]: an edit of the first gateway's wins that
# maximum only above every real value, so both edits lie above -75 dBm.
SURFACE = PayloadSurface(
    format="json",
    time=TimeSlot(JsonPath(("time",)), "iso_utc"),
    out_of_range=(FieldEdit(JsonPath(("rxInfo", 0, "rssi")), "rssi_dbm", 5),),  # max 0 dBm
    wrong_type=(FieldEdit(JsonPath(("rxInfo", 0, "rssi")), "rssi_dbm", -0.5),),  # an int field
)

KIND = DeviceKind(
    name="lorawan-meters",
    label="municipal water meters on LoRaWAN via ChirpStack v4 (frames by fPort), named by DevEUI",
    id_prefix="lm",
    measurement=MEASUREMENT,
    interval_s=INTERVAL_S,
    build=_build,
    surface=SURFACE,
)
