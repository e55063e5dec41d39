"""Lookout streams: the Faust app and its wiring (records, topics, agents, sinks, metrics, CLI).

Decisions about *whether* to alert are made in :mod:`detectors`; this package only moves
bytes between Kafka, the detectors, the sinks and Prometheus.
"""
