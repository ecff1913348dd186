"""ChirpStack v4 "up" events around a device's frame, for the LoRaWAN models behind ChirpStack.

ChirpStack publishes every uplink of every device as an integration.UplinkEvent in its JSON
mapping (camelCase, the frame base64 in `data`) on application/{application id}/device/{DevEUI}
/event/up. A device is named by its DevEUI, derived from its fleet number, so the device_id tag
the profiles read from `deviceInfo.devEui` is the DevEUI; the district is a device tag in
ChirpStack (Device > Tags > district). Several models share the topic; a profile tells its own
events apart by `deviceInfo.deviceProfileName`.
"""

from __future__ import annotations

import base64
import random
import uuid
from collections.abc import Sequence
from typing import Any, NamedTuple

from simulators.devices.base import DeviceSpec

TENANT_ID = "52f14cd4-c6f1-4fbd-8f87-4025e1d49242"
TENANT_NAME = "My Hao Town"
GATEWAY_IDS = ("0016c001f153a14c", "0016c001f1500b22")  # the town's two gateways nearest


class ChirpstackApplication(NamedTuple):
    """Where a model's devices live in ChirpStack."""

    application_id: str
    application_name: str
    device_profile_id: str
    device_profile_name: str  # what the profile's match.content tests
    dev_eui_prefix: str  # ten hex digits; the fleet number fills the last six


class ChirpstackDevice:
    """One end device of a ChirpStack application: its names, frame counter and events."""

    def __init__(self, spec: DeviceSpec, application: ChirpstackApplication) -> None:
        self._rng: random.Random = spec.rng
        self._application = application
        self.device_name = spec.device_id
        number = int(spec.device_id.rsplit("-", 1)[1])
        self.device_id = f"{application.dev_eui_prefix}{number:06x}"  # lm-0001 -> ...000001
        self.topic = f"application/{application.application_id}/device/{self.device_id}/event/up"
        self.district = spec.district
        self.tags = {"district": spec.district, "device_id": self.device_id}
        self._dev_addr = f"{self._rng.randrange(1 << 32):08x}"
        self._f_cnt = self._rng.randrange(10_000)

    def event(
        self,
        time: str,
        f_port: int,
        frame: bytes,
        radio: Sequence[tuple[int, float]],
        spreading_factor: int = 7,
    ) -> dict[str, Any]:
        """The event of one uplink received at `time` by one gateway per (rssi, snr) in
        `radio` (at most len(GATEWAY_IDS))."""
        application = self._application
        self._f_cnt += 1
        return {
            "deduplicationId": str(uuid.UUID(int=self._rng.getrandbits(128), version=4)),
            "time": time,
            "deviceInfo": {
                "tenantId": TENANT_ID,
                "tenantName": TENANT_NAME,
                "applicationId": application.application_id,
                "applicationName": application.application_name,
                "deviceProfileId": application.device_profile_id,
                "deviceProfileName": application.device_profile_name,
                "deviceName": self.device_name,
                "devEui": self.device_id,
                "tags": {"district": self.district},
            },
            "devAddr": self._dev_addr,
            "adr": True,
            "dr": 12 - spreading_factor,  # AS923: DR5 is SF7 ... DR0 is SF12
            "fCnt": self._f_cnt,
            "fPort": f_port,
            "confirmed": False,
            "data": base64.b64encode(frame).decode(),
            "rxInfo": [
                {
                    "gatewayId": gateway_id,
                    "uplinkId": self._rng.randrange(1 << 32),
                    "rssi": rssi,
                    "snr": snr,
                    "channel": self._rng.randrange(8),
                    "crcStatus": "CRC_OK",
                }
                for gateway_id, (rssi, snr) in zip(GATEWAY_IDS, radio, strict=False)
            ],
            "txInfo": {
                "frequency": 923_200_000 + 200_000 * self._rng.randrange(8),
                "modulation": {
                    "lora": {
                        "bandwidth": 125000,
                        "spreadingFactor": spreading_factor,
                        "codeRate": "CR_4_5",
                    }
                },
            },
        }
