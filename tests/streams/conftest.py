"""Helpers shared by the tests of several ``streams`` subpackages."""
from __future__ import annotations


def samples(reg, name):
    """Every sample of metric ``name`` in registry ``reg``: sorted label pairs -> value."""
    return {
        tuple(sorted(s.labels.items())): s.value
        for fam in reg.collect()
        for s in fam.samples
        if s.name == name
    }


class BrokenStream:
    """A stream whose every use raises: what an agent sees when its code has a bug."""

    def __getattr__(self, name):
        raise RuntimeError(f"bug reached through stream.{name}")
