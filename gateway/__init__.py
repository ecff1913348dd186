"""IoT sensor telemetry gateway: MQTT device messages -> device profiles -> InfluxDB time series."""

__version__ = "0.1.0"
