"""Keeping Python's cyclic garbage collector out of bulk work that makes no reference cycles.

Batches of events, decoded JSON and loaded detector state are thousands to millions of young
objects that are freed by reference counting. The collector would scan them every 700
allocations and promote them, bringing on full collections over the whole heap; pausing it for
the duration of one such piece of work (and no longer) leaves its usual schedule to collect
whatever cyclic garbage the work did make, afterwards.
"""
from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for the ``with`` block; its previous state is restored.

    >>> import gc
    >>> with cyclic_gc_paused():
    ...     gc.isenabled()
    False
    >>> gc.isenabled()
    True
    """
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()
