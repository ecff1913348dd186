"""Grafana dashboards and alert rules as code (`gateway dashboards build`).

Built with grafana-foundation-sdk, the optional `dashboards` extra. Nothing in the pipeline
imports this package: it only describes how to look at what the gateway writes.
"""
