"""The correlator on Kafka: parent incidents across customers, found online (issue 18).

The logic is :mod:`detectors.correlator` (two stages, the same code replay runs in one
process); this package moves its inputs and outputs through Kafka:

* the detection agent's batches yield **onsets** (a family newly anomalous for a customer) and
  alerts; :class:`~streams.correlation.publisher.CorrelationPublisher` re-keys each onset by
  every group its customer belongs to (``customers`` catalogue) onto the *onsets* repartition
  topic, copies the alerts to the *parents* topic, and tells both how far event time got on
  each input partition (watermarks) -- one batch record per partition and chunk;
* **stage one** (:class:`~streams.correlation.stages.GroupPartition`, an agent on the onsets
  topic, as many partitions as the input) counts each group's onsets against its background and
  sends, per closed interval, the group tests to the parents topic;
* **stage two** (:class:`~streams.correlation.stages.ParentsPartition`, an agent on the
  one-partition parents topic) opens, grows and resolves parents, holds new alerts, and writes
  parent incidents (``lookout.incident/v1``) to the *incidents* topic and every alert, with its
  ``parent_id``, to the *routed alerts* topic the sinks read.

Both stages keep their state in a compacted topic, written after every batch with the offset it
covers; a restart reloads it and skips what it covers (at-least-once, deterministic ids). The
customer catalogue is the compacted ``customers`` topic, read whole by every worker
(:class:`~streams.correlation.customers.CustomerTable`).

May import :mod:`detectors`, :mod:`streams.settings`, :mod:`streams.kafka` and
:mod:`streams.pipeline`; the worker and the commands import it.
"""
