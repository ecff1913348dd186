"""The Things Stack v3 uplink JSON around a device's frame, for the LoRaWAN models whose
profiles read the frame with a declarative layout (variants, flags, channel streams)."""

from __future__ import annotations

import base64
import random
from typing import Any, NamedTuple

import orjson

from simulators.clock import utc_rfc3339
from simulators.devices.base import DeviceSpec, Telemetry
from simulators.surface import FieldEdit, JsonPath, PayloadSurface, TimeSlot
from simulators.truth import TruthReading

NS_PER_US = 1000

LORA_RSSI_DBM = (-104.0, 6.0)  # mean, sigma: a street-level sensor a few km from the gateway
LORA_SNR_DB = (5.0, 3.0)


class Uplink(NamedTuple):
    document: dict[str, Any]
    received_us: int  # when the Application Server stamped it
    rssi: int


class TtsDevice:
    """One end device of a TTS application: its frame counter and its radio link."""

    def __init__(
        self, rng: random.Random, application_id: str, measurement: str, spec_ids: tuple[str, str]
    ) -> None:
        self._rng = rng
        self.application_id = application_id
        self.measurement = measurement
        self.device_id, self.district = spec_ids
        self.tags = {"district": self.district, "device_id": self.device_id}
        self.f_cnt = rng.randrange(1000)

    @property
    def topic(self) -> str:
        return f"v3/{self.application_id}/devices/{self.device_id}/up"

    def uplink(self, sim_time_ms: int, f_port: int, frame: bytes) -> Uplink:
        """An ApplicationUp with an uplink_message (empty fields omitted, as TTS does), stamped
        a second or two after the device's wake-up."""
        received_us = sim_time_ms * 1000 + self._rng.randrange(500_000, 2_500_000)
        rssi = round(min(max(self._rng.gauss(*LORA_RSSI_DBM), -125.0), -80.0))
        snr = round(4 * min(max(self._rng.gauss(*LORA_SNR_DB), -15.0), 12.0)) / 4
        self.f_cnt += 1
        document = {
            "end_device_ids": {
                "device_id": self.device_id,
                "application_ids": {"application_id": self.application_id},
            },
            "received_at": utc_rfc3339(received_us),
            "uplink_message": {
                "f_port": f_port,
                "f_cnt": self.f_cnt,
                "frm_payload": base64.b64encode(frame).decode(),
                "rx_metadata": [
                    {"gateway_ids": {"gateway_id": "mh-gw-01"}, "rssi": rssi, "snr": snr}
                ],
                "received_at": utc_rfc3339(received_us - 40_000),
                "attributes": {"district": self.district},
            },
        }
        return Uplink(document, received_us, rssi)

    def report(
        self,
        sim_time_ms: int,
        f_port: int,
        frame: bytes,
        fields: dict[str, int | float],
        clock_ns: int | None = None,
    ) -> Telemetry:
        """The uplink and its truth: `fields` plus the rssi, stamped with the device's clock
        (`clock_ns`) or, without one, the Application Server's receive time."""
        uplink = self.uplink(sim_time_ms, f_port, frame)
        fields["rssi_dbm"] = uplink.rssi
        reading = TruthReading(
            measurement=self.measurement,
            device_id=self.device_id,
            tags=self.tags,
            time_ns=uplink.received_us * NS_PER_US if clock_ns is None else clock_ns,
            fields=fields,
        )
        return Telemetry(orjson.dumps(uplink.document), [reading])


class TtsModel:
    """What the TTS device models share: the device's own random stream (`_rng`) and its end
    device (`_tts`), which sends the frames the model builds and says what they mean."""

    def __init__(
        self, spec: DeviceSpec, application_id: str, measurement: str, interval_s: int
    ) -> None:
        self._rng = spec.rng
        self._tts = TtsDevice(
            spec.rng, application_id, measurement, (spec.device_id, spec.district)
        )
        self.device_id = spec.device_id
        self.topic = self._tts.topic
        self.interval_s = interval_s


_RADIO = ("uplink_message", "rx_metadata", 0)


def tts_surface(time: TimeSlot | None = None) -> PayloadSurface:
    """Where faults find the uplink's time (received_at, unless the device's own clock is
    given) and the rssi the profiles store (rssi_dbm, -150..0 dBm, an integer)."""
    return PayloadSurface(
        format="json",
        time=time or TimeSlot(JsonPath(("received_at",)), "iso_utc"),
        out_of_range=(FieldEdit(JsonPath((*_RADIO, "rssi")), "rssi_dbm", 12),),
        wrong_type=(FieldEdit(JsonPath((*_RADIO, "rssi")), "rssi_dbm", -106.5),),
    )
