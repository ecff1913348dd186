"""Device simulators for the Mỹ Hào telemetry gateway.

They speak only MQTT: streetlight controllers, water meters, traffic counters and the other
device kinds in `simulators.devices` publish the payloads their real counterparts send, and
write the readings they meant to send (the truth) so a test can compare what reached InfluxDB.
Nothing here imports `gateway`, so a simulator and a decoder cannot agree by accident.
"""
