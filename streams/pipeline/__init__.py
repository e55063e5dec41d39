"""What the live worker and replay both run: raw message -> decode -> Engine -> alerts / dead letters.

* :mod:`.codecs` -- bytes <-> events and alerts: the total decoder (size, depth and digit guards,
  JSON, the event contract, envelopes), the Kafka partitioner, the dead-letter record;
* :mod:`.processor` -- :class:`~streams.pipeline.processor.Processor`: a batch of raw messages
  through the codecs and the :class:`~detectors.engine.Engine`, back as alerts, dead letters and
  positions; no I/O, bad input never raises;
* :mod:`.metrics` -- the Prometheus metrics of detection (and of the worker around it), against
  an injected registry, applied once per batch.

May import :mod:`detectors` and :mod:`streams.settings`; nothing that does I/O (Kafka, HTTP,
Faust) and nothing else of :mod:`streams`, so the worker and replay cannot drift apart.
"""
