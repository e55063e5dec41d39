"""Tools for trying Lookout on one machine: the local Kafka broker, simulated traffic and the demo.

* :mod:`.broker` -- :class:`~streams.devtools.broker.LocalBroker`: a real single-node Kafka
  (KRaft) on loopback, jars fetched once with Maven, a broker it did not start never touched
  (``lookout broker``, the test fixtures, the benchmarks);
* :mod:`.traffic` -- ``lookout simulate``: simulated traffic with labelled incidents to a file or
  Kafka (:func:`~streams.devtools.traffic.simulate_traffic`);
* :mod:`.producer` -- :class:`~streams.devtools.producer.EventProducer`: simulated events onto a
  topic, one per message or in envelopes (the simulator, the demo, the benchmarks);
* :mod:`.demo` -- ``lookout demo``: broker + topics + worker + simulator + live alert view,
  everything stopped afterwards.

Production code never imports this package (the worker, replay and the sinks run against any
Kafka). May import :mod:`detectors`, :mod:`streams.settings`, :mod:`streams.kafka`,
:mod:`streams.pipeline`, :mod:`streams.sinks` and :mod:`streams.offline`; it runs the worker as
a process (``lookout worker``), never by importing it.
"""
