"""Ultrasonic level sensor in a district reservoir, on LoRaWAN behind The Things Stack v3.

The treatment plant's pump fills the reservoir under level control (on below 2.0 m, off above
5.5 m, the hysteresis a float switch or a level relay gives) while the ward draws from it with
the same daily demand as the flow meters: the level falls through the morning and evening
peaks and recovers at night. The sensor in the roof, 6.5 m above the floor, measures the
distance down to the water every ten minutes; the frame travels as a TTS v3 uplink whose
`received_at` the Application Server stamps in UTC with microseconds. Now and then
condensation on the transducer loses the echo and the sensor reports distance 0, which the
gateway drops (level and distance), keeping battery, temperature and radio readings.
"""

from __future__ import annotations

import base64
import math
import struct
from typing import Any, NamedTuple

import orjson

from simulators.clock import local_hour, utc_rfc3339
from simulators.devices.base import Device, DeviceKind, DeviceSpec, Telemetry, gauss_factor
from simulators.devices.water import demand_factor
from simulators.surface import FieldEdit, JsonPath, PayloadSurface, TimeSlot
from simulators.truth import TruthReading

INTERVAL_S = 600
MEASUREMENT = "water_tank"
APPLICATION_ID = "mh-water-tanks"

# The town's standard reservoir: sensor 6.5 m above the floor, overflow at 6.0 m.
SENSOR_HEIGHT_MM = 6500
OVERFLOW_M = 6.0
MIN_LEVEL_M = 0.2  # the outlet sits above the floor; the tank never drains below it
PUMP_ON_BELOW_M = 2.0
PUMP_OFF_ABOVE_M = 5.5
SURFACE_RIPPLE_MM = 4.0
NO_ECHO_P = 0.003
# The truth holds the decimal each conversion means (6500 mm - 2345 mm = 4.155 m, 287 x 0.1 °C
# = 28.7 °C): integer division gives the float nearest to it, as the gateway stores it.
MM_PER_M = 1000
MV_PER_V = 1000
DECI_PER_UNIT = 10
FRAME = struct.Struct(">HHh")  # battery mV, distance mm, temperature 0.1 °C
MIN_DISTANCE_M = 0.25  # the transducer's blind zone
MAX_DISTANCE_M = 7.0
NS_PER_US = 1000
BATTERY_DRAIN_MV_PER_REPORT = 0.01
LORA_RSSI_DBM = (-106.0, 5.0)  # mean, sigma: a roof-top sensor a few km from the gateway
LORA_SNR_DB = (4.0, 3.0)


class Frame(NamedTuple):
    battery_mv: int
    distance_mm: int
    temp_dc: int


class TankLevelSensor:
    """One reservoir and the level sensor in its roof."""

    def __init__(self, spec: DeviceSpec) -> None:
        self._rng = spec.rng
        self.device_id = spec.device_id
        self.topic = f"v3/{APPLICATION_ID}/devices/{spec.device_id}/up"
        self.interval_s = INTERVAL_S
        self._district = spec.district
        self._tags = {"district": spec.district, "device_id": spec.device_id}
        self._area_m2 = self._rng.uniform(25.0, 60.0)  # 150-360 m³ of working volume
        self._base_demand_lps = self._rng.uniform(3.0, 8.0)
        self._pump_lps = self._base_demand_lps * self._rng.uniform(1.4, 1.7)
        self._level_m = self._rng.uniform(2.5, 5.0)
        self._pump_on = self._rng.random() < 0.5
        self._battery_mv = self._rng.uniform(3550.0, 3650.0)
        self._dev_eui = f"70B3D57ED005{self._rng.randrange(0x10000):04X}"
        self._dev_addr = f"260B{self._rng.randrange(0x10000):04X}"
        self._f_cnt = self._rng.randrange(1000)

    def next_message(self, sim_time_ms: int) -> Telemetry:
        self._fill_and_drain(local_hour(sim_time_ms))
        # The AS stamps the uplink a second or two after the sensor's scheduled wake-up.
        received_us = sim_time_ms * 1000 + self._rng.randrange(500_000, 2_500_000)
        frame = Frame(
            battery_mv=round(self._battery_mv),
            distance_mm=self._distance_mm(),
            temp_dc=round(10 * self._roof_temperature_c(local_hour(sim_time_ms))),
        )
        rssi = round(min(max(self._rng.gauss(*LORA_RSSI_DBM), -125.0), -80.0))
        snr = round(4 * min(max(self._rng.gauss(*LORA_SNR_DB), -15.0), 12.0)) / 4
        self._f_cnt += 1
        self._battery_mv -= BATTERY_DRAIN_MV_PER_REPORT
        payload = self._uplink(received_us, FRAME.pack(*frame), rssi, snr)
        reading = self._reading(received_us, frame, rssi, snr)
        return Telemetry(orjson.dumps(payload), [reading])

    def _fill_and_drain(self, hour: float) -> None:
        if self._level_m < PUMP_ON_BELOW_M:
            self._pump_on = True
        elif self._level_m > PUMP_OFF_ABOVE_M:
            self._pump_on = False
        demand_lps = self._base_demand_lps * demand_factor(hour) * gauss_factor(self._rng, 0.05)
        inflow_lps = self._pump_lps if self._pump_on else 0.0
        change_m = (inflow_lps - demand_lps) * self.interval_s / 1000 / self._area_m2
        self._level_m = min(max(self._level_m + change_m, MIN_LEVEL_M), OVERFLOW_M)

    def _distance_mm(self) -> int:
        if self._rng.random() < NO_ECHO_P:
            return 0
        ripple = self._rng.gauss(0.0, SURFACE_RIPPLE_MM)
        return round(SENSOR_HEIGHT_MM - self._level_m * 1000 + ripple)

    def _roof_temperature_c(self, hour: float) -> float:
        # Under a concrete roof in the Red River delta: ~22 °C before dawn, ~31 °C mid-afternoon.
        return 26.5 + 4.5 * math.sin(2 * math.pi * (hour - 9.0) / 24) + self._rng.gauss(0, 0.3)

    def _uplink(self, received_us: int, frame: bytes, rssi: int, snr: float) -> dict[str, Any]:
        """The ApplicationUp JSON of TTS v3 (empty fields omitted, as TTS does)."""
        received_at = utc_rfc3339(received_us)
        return {
            "end_device_ids": {
                "device_id": self.device_id,
                "application_ids": {"application_id": APPLICATION_ID},
                "dev_eui": self._dev_eui,
                "dev_addr": self._dev_addr,
            },
            "received_at": received_at,
            "uplink_message": {
                "f_port": 2,
                "f_cnt": self._f_cnt,
                "frm_payload": base64.b64encode(frame).decode(),
                "rx_metadata": [
                    {
                        "gateway_ids": {"gateway_id": "mh-gw-01"},
                        "rssi": rssi,
                        "channel_rssi": rssi,
                        "snr": snr,
                    }
                ],
                "settings": {
                    "data_rate": {"lora": {"bandwidth": 125000, "spreading_factor": 9}},
                    "frequency": "921400000",
                },
                "received_at": utc_rfc3339(received_us - 40_000),
                "attributes": {"district": self._district},
            },
        }

    def _reading(self, received_us: int, frame: Frame, rssi: int, snr: float) -> TruthReading:
        fields: dict[str, int | float] = {}
        level_m = (SENSOR_HEIGHT_MM - frame.distance_mm) / MM_PER_M
        if 0 <= level_m <= OVERFLOW_M:  # the profile's min/max: no echo reads as 6.5 m
            fields["level_m"] = level_m
        distance_m = frame.distance_mm / MM_PER_M
        if MIN_DISTANCE_M <= distance_m <= MAX_DISTANCE_M:
            fields["distance_m"] = distance_m
        fields["temperature_c"] = frame.temp_dc / DECI_PER_UNIT
        fields["battery_v"] = frame.battery_mv / MV_PER_V
        fields["rssi_dbm"] = rssi
        fields["snr_db"] = snr
        return TruthReading(
            measurement=MEASUREMENT,
            device_id=self.device_id,
            tags=self._tags,
            time_ns=received_us * NS_PER_US,
            fields=fields,
        )


def _build(spec: DeviceSpec) -> Device:
    return TankLevelSensor(spec)


_RADIO = ("uplink_message", "rx_metadata", 0)
SURFACE = PayloadSurface(
    format="json",
    time=TimeSlot(JsonPath(("received_at",)), "iso_utc"),
    out_of_range=(
        FieldEdit(JsonPath((*_RADIO, "rssi")), "rssi_dbm", 12),  # max 0 dBm
        FieldEdit(JsonPath((*_RADIO, "snr")), "snr_db", 45.0),  # max 30 dB
    ),
    wrong_type=(
        FieldEdit(JsonPath((*_RADIO, "snr")), "snr_db", "7.5"),
        FieldEdit(JsonPath((*_RADIO, "rssi")), "rssi_dbm", -106.5),  # not an integer
    ),
)

KIND = DeviceKind(
    name="tanks",
    label="reservoir level sensors on LoRaWAN via TTS v3",
    id_prefix="tk",
    measurement=MEASUREMENT,
    interval_s=INTERVAL_S,
    build=_build,
    surface=SURFACE,
)
