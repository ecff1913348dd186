"""Device profiles: declarative files that teach the gateway a device model.

`schema` validates a file, `topics` matches MQTT topics against named patterns, `compile`
turns a validated profile into plain functions for the hot path, `registry` loads a directory.
"""
