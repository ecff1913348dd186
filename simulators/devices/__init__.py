"""Registry of device models. A new model is a module with a `KIND` added here.

The order is the order of the CLI flags and of the devices in a fleet; new kinds go at the end
so that existing commands build exactly the fleets they always did.
"""

from simulators.devices import (
    air_station,
    anpr_camera,
    cabinet,
    lighting,
    lorawan_light,
    lorawan_meter,
    parking_sensor,
    pressure_logger,
    radar,
    river_probe,
    signal_controller,
    site_monitor,
    speed_probe,
    tank,
    traffic,
    water,
    water_meter,
    water_quality,
)
from simulators.devices.base import Device, DeviceKind, DeviceSpec, Telemetry

KINDS: dict[str, DeviceKind] = {
    kind.name: kind
    for kind in (
        lighting.KIND,
        water.KIND,
        traffic.KIND,
        tank.KIND,
        water_quality.KIND,
        radar.KIND,
        signal_controller.KIND,
        speed_probe.KIND,
        site_monitor.KIND,
        cabinet.KIND,
        pressure_logger.KIND,
        lorawan_light.KIND,
        anpr_camera.KIND,
        air_station.KIND,
        water_meter.KIND,
        river_probe.KIND,
        parking_sensor.KIND,
        lorawan_meter.KIND,
    )
}

__all__ = ["KINDS", "Device", "DeviceKind", "DeviceSpec", "Telemetry"]
