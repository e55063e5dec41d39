"""Detector state that follows input partitions, consistent with the committed offsets.

Why: a crash, restart or rebalance must not restart a customer's models cold, and must not
lose or repeat an alert. Faust's tables write one changelog record per update (far too costly
per event) and their recovery has known hangs, so the worker keeps its own, much simpler,
per-partition snapshots in a compacted Kafka topic (``<app id>-state`` by default):

* **Snapshot** (every ``snapshot_interval_s``, on revocation and on clean shutdown). For each
  owned input partition ``p``: note ``S`` = the next input offset to process and the customers
  changed since the last snapshot; write each such customer's state (key = customer id) to
  partition ``p`` of the state topic, in slices of at most ``SLICE_S`` of event-loop time so
  processing never stalls, each slice only after the alerts producer is flushed (a slice may
  reflect events processed after ``S``: their alerts and dead letters are acknowledged before
  any state that has them, see *Restore*); flush both producers (so every alert and dead letter
  of the events below ``S`` is acknowledged too); then write the partition's *marker* (input
  offset ``S`` and the alerts offset where the re-run may start producing alerts). Only then may the consumer
  commit ``S`` for ``p``: :class:`~streams.state.book.PartitionBook` is the only source of the
  input topic's commit offsets (see :mod:`.commit_cap`).
* **Restore** (on assignment, before the first event of ``p`` is processed): read partition
  ``p`` of the state topic to its end, load every customer (the newest record per key), and read
  the alerts partition from the marker's alerts offset to its end. The consumer resumes at the
  committed offset, which is never above the marker, so the events after the snapshot are
  learned again. Customers whose restored state is newer than an event ignore it (event-time
  dedup; counted as ``reread``): that state may come from a snapshot that never wrote its
  marker, which is safe because no state record is sent before the alerts of the events it
  reflects are acknowledged. Alerts the re-run reproduces (deterministic ids) are found in the
  set read back from the alerts topic and not sent again.
* Alerts of input partition ``p`` are written to partition ``p`` of the alerts topic, so the
  read-back covers exactly one partition.
* **Rebuild** (with ``--rebuild-from``, after a restore that found the state missing, written
  under other model settings or partly refused): the partition's recent history up to the
  marker is replayed into an engine of its own, the customers the restore lacked take that
  state, and the partition is snapshotted before its first live event (:mod:`.rebuild`).

Where each part lives (one module, one job):

* :mod:`.book` -- :class:`~streams.state.book.PartitionBook`, the per-partition bookkeeping
  (positions, dirty customers, commit offsets, alerts to suppress), and the marker record;
  plain Python, no I/O, unit-tested without Kafka;
* :mod:`.sync` -- :class:`~streams.state.sync.StateSync`: writing snapshots and restoring
  partitions, in event-loop slices, against the book, the engine and the two Kafka ends below
  (the worker's runtime decides *when*);
* :mod:`.reader` -- :class:`~streams.state.reader.StateReader`, the Kafka reads (a partition of
  the state or alerts topic to its end, end offsets, creating the state topic);
* :mod:`.producer` -- :class:`~streams.state.producer.StateProducer`, the snapshots' own
  producer (state never queues ahead of alerts);
* :mod:`.commit_cap` -- :func:`~streams.state.commit_cap.cap_input_commits`, which makes Faust
  commit the input topic only at markers;
* :mod:`.checkpoint` -- state *files*: ``--initial-state`` and the files older versions left;
* :mod:`.rebuild` -- :class:`~streams.state.rebuild.Rebuilder`: a partition whose saved state is
  refused (a model change) or missing relearns from the input's history before going live
  (``--rebuild-from``); the history is read by what the worker is given
  (:mod:`streams.offline.history`).

The state *format* (what a customer's record holds) is :mod:`detectors.state`; the worker
(:mod:`streams.worker`) wires this package to Faust.

May import :mod:`detectors`, :mod:`streams.settings` and :mod:`streams.kafka`; never the
worker, the pipeline, offline tools or commands.
"""
