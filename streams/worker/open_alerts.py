"""``lookout topics repartition``'s part for the Alertmanager sink: open alerts move with their customers.

Why: the sink keeps what it read as open from partition ``p`` of ``alerts`` in partition ``p``
of the compacted ``<app id>-alertmanager-open`` topic, keyed ``alerts|<customer>``
(:mod:`streams.sinks.open_store`), and the owner of ``p`` re-sends it until it resolves. After
the repartition a moved customer's alerts arrive in the partition it hashes to under the new
count. Left where it was, its record would be re-sent for ever by the old partition's owner --
the resolution goes to the new one -- and the new owner would not re-send what is open.

So, with the workers stopped, after the drain (whose alerts already go to each customer's new
partition):

1. the store topic gets the new count (created if the sink has not written to it yet);
2. every customer with an ``alerts|`` record outside its new partition, or with alerts the
   sinks had not acknowledged in its old partition (a worker stopped by the growth does not wait
   for its sinks: Faust commits their offsets every few seconds), gets one record in its new
   partition: the one its old partition held, with those alerts applied in order by the sink's
   own bookkeeping (:func:`streams.sinks.alertmanager.remember`) -- the sink that reads them
   later sends only their resolutions and leaves the rest to the new owner's re-sends
   (:meth:`~streams.sinks.alertmanager.AlertmanagerSink.handle_stray`);
3. then a tombstone for its records elsewhere.

Applying the same alerts twice gives the same record, so a second run after an interruption
(the old partition's record is read again if the tombstone was not written yet) changes nothing.
The correlator's routed alerts and incidents keep their partition counts, and with them their
records; whether there is a sink and whether it reads ``alerts`` is ``LOOKOUT_ALERTMANAGER_URL``
and ``LOOKOUT_CORRELATOR``, so the command runs with the workers' settings. (A worker that stops
soon after it starts may not have written a record or committed an offset yet: then every alert
of its partitions is one the sinks had not read.)
"""
from __future__ import annotations

import json
import logging
from typing import Any, Awaitable, Callable

from streams.pipeline.codecs import partition_of
from streams.settings import Settings
from streams.sinks.alertmanager import decode, is_parent, remember
from streams.sinks.open_store import SEP
from streams.state.reader import StateReader

log = logging.getLogger("lookout.repartition")

Send = Callable[..., Awaitable[Any]]  # send(topic, key=, value=, partition=), as aiokafka's producer


async def move_open_alerts(reader: StateReader, send: Send, s: Settings, old: int, n: int) -> int:
    """Lay the sink's open alerts out for ``n`` input partitions (module doc); return how many
    customers' records were written."""
    topic = s.alertmanager_open_topic_name
    have = await reader.partition_count(topic)
    if have is None and not s.alertmanager_url:  # no sink: nothing wrote a record, nothing to read
        return 0
    # (missing: no sink wrote a record yet -- it may have alerts to read, though)
    have = await reader.ensure_partitions(topic, n, True)
    prefix = (s.alerts_topic + SEP).encode()
    records: dict[str, dict[int, bytes | None]] = {}  # customer -> {partition: latest value}
    for q in range(have):
        for key, value in (await reader.read_partition(topic, q))[0]:
            if key is not None and key.startswith(prefix):
                records.setdefault(key[len(prefix):].decode("utf-8", "replace"), {})[q] = value
    pending: dict[str, list[dict[str, Any]]] = {}
    if not s.correlator:  # else the sink reads the correlator's routed alerts, which keep their count
        committed = {p: await reader.committed_offset(s.app_id, s.alerts_topic, p) for p in range(old)}
        pending = await _unacknowledged(reader, s.alerts_topic, committed, n)
    written = 0
    for cid in sorted(set(records) | set(pending)):
        home, held = partition_of(cid, n), records.get(cid, {})
        elsewhere = [q for q, v in held.items() if q != home and v is not None]
        if not elsewhere and cid not in pending:
            continue
        base = held.get(partition_of(cid, old)) or held.get(home)
        open_alerts = {cid: _alerts(base)} if base else {}
        for alert in pending.get(cid, ()):
            remember(open_alerts, alert)
        key = prefix + cid.encode()
        value = json.dumps(open_alerts[cid]).encode() if open_alerts.get(cid) else None
        await send(topic, key=key, value=value, partition=home)
        for q in elsewhere:
            await send(topic, key=key, value=None, partition=q)
        written += 1
    log.info("open alerts of %d customers laid out for %d partitions", written, n)
    return written


async def _unacknowledged(reader: StateReader, topic: str, committed: dict[int, int | None], n: int
                          ) -> dict[str, list[dict[str, Any]]]:
    """The alerts after the group's committed offset in every old partition of ``topic`` whose
    customer hashes elsewhere under ``n``, per customer in order."""
    out: dict[str, list[dict[str, Any]]] = {}
    for p, start in committed.items():
        for _, value in (await reader.read_partition(topic, p, start))[0]:
            alert = decode(value) if value is not None else None
            if alert is not None and not is_parent(alert) and partition_of(alert["customer_id"], n) != p:
                out.setdefault(alert["customer_id"], []).append(alert)
    return out


def _alerts(value: bytes) -> dict[str, Any]:
    try:
        alerts = json.loads(value)
    except ValueError:
        alerts = None
    if not isinstance(alerts, dict):
        log.warning("unreadable open-alerts record ignored: %r", value[:64])
        return {}
    return alerts
