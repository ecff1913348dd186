"""Registry of device models. A new model is a module with a `KIND` added here."""

from simulators.devices import lighting, traffic, water
from simulators.devices.base import Device, DeviceKind, DeviceSpec, Telemetry

KINDS: dict[str, DeviceKind] = {
    kind.name: kind for kind in (lighting.KIND, water.KIND, traffic.KIND)
}

__all__ = ["KINDS", "Device", "DeviceKind", "DeviceSpec", "Telemetry"]
