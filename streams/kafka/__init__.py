"""Kafka clients' common ground: security settings and the admin helpers production code uses.

* :mod:`.security` -- TLS/SASL: :class:`~streams.settings.Settings` -> the arguments of every
  Kafka client (Faust, aiokafka, kafka-python), and the check that a broker rejects us;
* :mod:`.admin` -- kafka-python admin helpers: wait until a broker answers, create topics,
  one-line errors (:class:`~streams.kafka.admin.BrokerError`) for an unreachable broker or
  rejected credentials;
* :mod:`.partitions` -- read one partition from an offset to an end, outside any consumer group;
* :mod:`.retry` -- Kafka I/O inside an agent waits out a broker outage (a retriable error is
  retried every second) instead of failing the agent;
* :mod:`.supervision` -- a Faust agent that raises stops the process (exit 70) instead of being
  restarted past the message it failed on.

May import :mod:`detectors` and :mod:`streams.settings`; nothing else of :mod:`streams`.
"""
