"""Engine state on disk, so a restarted worker does not warm up for a day again.

The worker saves the engine every ``checkpoint_interval_s`` and on shutdown, atomically, into
its data dir, and loads it on start. A checkpoint written under other model hyper-parameters
is ignored (the models would not match); an unreadable one is moved aside, never fatal.
Events redelivered after a restart (at-least-once) are older than the restored state and are
ignored as duplicates; alert ids do not depend on worker state, so a re-opened incident keeps
its id.
"""
from __future__ import annotations

import logging
import os
import pickle
import time
from pathlib import Path

from detectors.engine import Engine

log = logging.getLogger("lookout.checkpoint")
FORMAT = 1


class Checkpoint:
    def __init__(self, path: Path, fingerprint: str):
        self.path = Path(path)
        self.fingerprint = fingerprint
        self.last_saved: float | None = None

    def load(self, engine: Engine) -> int:
        """Restore ``engine`` from disk; return the number of customers restored (0 if none)."""
        try:
            blob = self.path.read_bytes()
        except FileNotFoundError:
            return 0
        try:
            head = pickle.loads(blob)
            if head.get("format") != FORMAT or head.get("fingerprint") != self.fingerprint:
                log.warning("checkpoint %s was written with other model settings; starting fresh", self.path)
                return 0
            engine.restore(head["state"])
        except Exception as exc:  # a torn or foreign file must not stop the worker
            aside = self.path.with_suffix(f".unreadable-{int(time.time())}")
            os.replace(self.path, aside)
            log.error("checkpoint %s unreadable (%s); moved to %s, starting fresh", self.path, exc, aside)
            return 0
        return len(engine.customers)

    def save(self, engine: Engine) -> int:
        """Write the engine state atomically; return the size in bytes."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        blob = pickle.dumps({"format": FORMAT, "fingerprint": self.fingerprint, "state": engine.snapshot()},
                            protocol=pickle.HIGHEST_PROTOCOL)
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        self.last_saved = time.time()
        return len(blob)
