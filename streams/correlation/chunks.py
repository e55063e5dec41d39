"""A correlator stage's state in records the broker accepts, however large it grows.

A stage writes its whole state under one key of the compacted state topic after every batch.
Stage two's state holds the tests of intervals that not every stage-one partition has reported
yet, and in a replayed backlog that reached 1.07-1.33 MB: over Kafka's default 1 MB record
limit, so the producer refused it and the worker stopped (exit 70), and stopped again on the
same backlog after every restart. A value over the part size
(``Settings.correlator_state_chunk_bytes``, 512 KiB) is now written as parts under
keys of their own (``<key>@<generation>#<i>``), then a small *head* under the key that names
them; the parts of the head it replaces are deleted (tombstones) after it. A reader joins the
parts the latest head names. The head goes after its parts, on the same partition, so a head is
never seen without them; a crash between the two leaves the previous head, whose parts are
deleted only after the new head is acknowledged.

>>> records = split("parents", b"x" * 10, "g1", limit=4)
>>> [k for k, _ in records]
['parents@g1#0', 'parents@g1#1', 'parents@g1#2', 'parents']
>>> join("parents", dict(records))
b'xxxxxxxxxx'
>>> split("parents", b"small", "g2", limit=4096)
[('parents', b'small')]
>>> parts_of(records[-1][1], "parents")
['parents@g1#0', 'parents@g1#1', 'parents@g1#2']
"""
from __future__ import annotations

import json
from typing import Mapping

__all__ = ["HEAD", "join", "parts_of", "split"]

#: what a head starts with (a stage's state is a JSON object, and starts with "{")
HEAD = b"lookout.chunks/v1 "


def split(key: str, value: bytes, generation: str, limit: int) -> list[tuple[str, bytes]]:
    """The records that write ``value`` under ``key``: itself if it fits in ``limit`` bytes, else
    its parts and then the head naming them (``generation``: unique per write)."""
    if len(value) <= limit:
        return [(key, value)]
    starts = range(0, len(value), limit)
    parts = [(f"{key}@{generation}#{i}", value[at:at + limit]) for i, at in enumerate(starts)]
    head = HEAD + json.dumps({"generation": generation, "parts": len(parts)}).encode()
    return [*parts, (key, head)]


def parts_of(value: bytes | None, key: str) -> list[str]:
    """The keys of the parts a head names (none for a plain value or a tombstone)."""
    if value is None or not value.startswith(HEAD):
        return []
    head = json.loads(value[len(HEAD):])
    return [f"{key}@{head['generation']}#{i}" for i in range(int(head["parts"]))]


def join(key: str, latest: Mapping[str, bytes | None]) -> bytes | None:
    """``key``'s value, from the topic's latest value per key (its parts joined if it is a head);
    :class:`ValueError` if a part the head names is missing."""
    value = latest.get(key)
    parts = parts_of(value, key)
    if not parts:
        return value
    missing = [p for p in parts if latest.get(p) is None]
    if missing:
        raise ValueError(f"{len(missing)} of the {len(parts)} parts of {key!r} are missing")
    return b"".join(latest[p] or b"" for p in parts)
