"""LoRaWAN streetlight controller behind a ChirpStack v4 network server.

The same luminaire and schedule as the JSON controllers (lit from dusk to dawn, 100 % until
23:00 and 50 % after, rare lamp failures), but on LoRaWAN: the node sends an 8-byte frame every
ten minutes (duty-cycle limits rule out one a minute) and ChirpStack publishes it as an "up"
event on application/{application id}/device/{DevEUI}/event/up, with the frame in base64 and
the district from the device's tags in ChirpStack. The frame:

    bytes 0-1  power, u16 big-endian, 0.1 W      bytes 2-5  energy register, u32, Wh
    byte  6    dim level, %                      byte  7    bit 0 lamp on, bits 1-3 fault code

The device is named by its DevEUI, derived from its fleet number (lw-0001 is
70b3d57ed0000001), so the device_id tag is the DevEUI, as the profile takes it from the event.
"""

from __future__ import annotations

import struct

import orjson

from simulators.clock import local_hour, utc_rfc3339
from simulators.devices.base import Device, DeviceKind, DeviceSpec, Telemetry, gauss_factor
from simulators.devices.chirpstack_uplink import ChirpstackApplication, ChirpstackDevice
from simulators.devices.lighting import (
    DAWN_H,
    DUSK_H,
    FAULT_NONE,
    FAULT_ONSET_P,
    FAULT_RECOVERY_P,
    PHOTOCELL_SPREAD_H,
    RATED_W_CHOICES,
    next_fault,
    scheduled_dim_pct,
)
from simulators.surface import FieldEdit, JsonPath, PayloadSurface, TimeSlot
from simulators.truth import TruthReading

INTERVAL_S = 600
MEASUREMENT = "streetlight"
# The town's streetlight application in ChirpStack (as in the profile's golden file).
APPLICATION = ChirpstackApplication(
    application_id="17c82e96-be03-4f38-aef3-f83d48582d97",
    application_name="streetlights",
    device_profile_id="14855bf7-d10d-4aee-b618-ebfcb64dc7ad",
    device_profile_name="sl-lorawan",
    dev_eui_prefix="70b3d57ed0",
)
F_PORT = 10
FRAME = struct.Struct(">HIBB")  # power 0.1 W, energy Wh, dim %, status bits
LAMP_ON_BIT = 0x01
FAULT_SHIFT = 1
STANDBY_DW = 5  # 0.5 W of control gear
NS_PER_US = 1000
# The truth holds the decimal each scale means (1523 x 0.1 W = 152.3 W, 1234567 Wh = 1234.567
# kWh): integer division gives the float nearest to it, as the gateway stores it.
DECI_PER_UNIT = 10
WH_PER_KWH = 1000
LORA_RSSI_DBM = (-100.0, 7.0)
LORA_SNR_DB = (5.0, 3.5)
# The luminaire's fault chances per minute, as chances per ten-minute report.
REPORT_FAULT_ONSET_P = FAULT_ONSET_P * INTERVAL_S / 60
REPORT_FAULT_RECOVERY_P = FAULT_RECOVERY_P * INTERVAL_S / 60


class LorawanStreetlight:
    """One LoRaWAN streetlight node."""

    def __init__(self, spec: DeviceSpec) -> None:
        self._rng = spec.rng
        self.interval_s = INTERVAL_S
        self._rated_w = self._rng.choice(RATED_W_CHOICES)
        self._dusk_h = DUSK_H + self._rng.uniform(-PHOTOCELL_SPREAD_H, PHOTOCELL_SPREAD_H)
        self._dawn_h = DAWN_H + self._rng.uniform(-PHOTOCELL_SPREAD_H, PHOTOCELL_SPREAD_H)
        self._energy_wh = self._rng.uniform(100_000.0, 5_000_000.0)
        self._fault = FAULT_NONE
        # Last: the node's radio state (address, frame counter) follows the luminaire's draws.
        self._node = ChirpstackDevice(spec, APPLICATION)
        self.device_id = self._node.device_id
        self.topic = self._node.topic

    def next_message(self, sim_time_ms: int) -> Telemetry:
        hour = local_hour(sim_time_ms)
        dim = scheduled_dim_pct(hour, self._dusk_h, self._dawn_h)
        self._fault = next_fault(
            self._rng,
            self._fault,
            scheduled_on=dim > 0,
            onset_p=REPORT_FAULT_ONSET_P,
            recovery_p=REPORT_FAULT_RECOVERY_P,
        )
        lamp_on = dim > 0 and self._fault == FAULT_NONE
        power_dw = round(self._rated_w * dim * gauss_factor(self._rng, 0.01) / 10)
        power_dw = power_dw if lamp_on else STANDBY_DW
        self._energy_wh += power_dw / DECI_PER_UNIT * self.interval_s / 3600
        status = (LAMP_ON_BIT if lamp_on else 0) | (self._fault << FAULT_SHIFT)
        frame = (power_dw, int(self._energy_wh), dim, status)
        # The network server stamps the uplink a moment after the node's scheduled wake-up.
        received_us = sim_time_ms * 1000 + self._rng.randrange(200_000, 1_500_000)
        rssi = round(min(max(self._rng.gauss(*LORA_RSSI_DBM), -125.0), -70.0))
        snr = round(4 * min(max(self._rng.gauss(*LORA_SNR_DB), -15.0), 12.0)) / 4
        event = self._node.event(
            utc_rfc3339(received_us), F_PORT, FRAME.pack(*frame), [(rssi, snr)]
        )
        return Telemetry(orjson.dumps(event), [self._reading(received_us, frame, rssi, snr)])

    def _reading(
        self, received_us: int, frame: tuple[int, int, int, int], rssi: int, snr: float
    ) -> TruthReading:
        power_dw, energy_wh, dim, status = frame
        return TruthReading(
            measurement=MEASUREMENT,
            device_id=self.device_id,
            tags=self._node.tags,
            time_ns=received_us * NS_PER_US,
            fields={
                "power_w": power_dw / DECI_PER_UNIT,
                "energy_kwh": energy_wh / WH_PER_KWH,
                "dim_pct": dim,
                "lamp_on": status & LAMP_ON_BIT,
                "fault_code": (status >> FAULT_SHIFT) & 0b111,
                "rssi_dbm": rssi,
                "snr_db": snr,
            },
        )


def _build(spec: DeviceSpec) -> Device:
    return LorawanStreetlight(spec)


SURFACE = PayloadSurface(
    format="json",
    time=TimeSlot(JsonPath(("time",)), "iso_utc"),
    out_of_range=(
        FieldEdit(JsonPath(("rxInfo", 0, "rssi")), "rssi_dbm", 5),  # max 0 dBm
        FieldEdit(JsonPath(("rxInfo", 0, "snr")), "snr_db", 40.0),  # max 30 dB
    ),
    wrong_type=(
        FieldEdit(JsonPath(("rxInfo", 0, "snr")), "snr_db", "7.5"),
        FieldEdit(JsonPath(("rxInfo", 0, "rssi")), "rssi_dbm", "-97"),
    ),
)

KIND = DeviceKind(
    name="lorawan-lights",
    label="LoRaWAN streetlight controllers via ChirpStack v4, named by DevEUI",
    id_prefix="lw",
    measurement=MEASUREMENT,
    interval_s=INTERVAL_S,
    build=_build,
    surface=SURFACE,
)
