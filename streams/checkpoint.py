"""Engine state on disk, so a restarted worker does not warm up for a day again.

The worker saves the engine every ``checkpoint_interval_s`` and on shutdown, atomically, into
its data dir (``engine-state.lookout``, the format of :mod:`detectors.state`: data, never
code), and loads it on start. A file that cannot be used -- garbage, truncated, another format
version, other model settings, or an ``engine-state.pickle`` left by an older Lookout -- is
moved aside with one WARNING line and the worker starts fresh; nothing in it is run.
Events redelivered after a restart (at-least-once) are older than the restored state and are
ignored as duplicates; alert ids do not depend on worker state, so a re-opened incident keeps
its id.

``lookout worker --initial-state FILE`` (a file from ``lookout replay --save-state``) is used
when the data dir holds no checkpoint newer than it.
"""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from detectors.engine import Engine
from detectors.state import StateError

log = logging.getLogger("lookout.checkpoint")
#: the data dir's checkpoint file
FILENAME = "engine-state.lookout"
#: checkpoints of older Lookouts (pickles): never loaded, moved aside on start
LEGACY_FILENAMES = ("engine-state.pickle",)


def write_atomically(path: Path, blob: bytes) -> None:
    """Write ``blob`` to ``path`` so that a reader sees the old or the new file, never a torn one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _move_aside(path: Path) -> Path:
    aside = path.with_name(f"{path.name}.unusable-{int(time.time())}")
    os.replace(path, aside)
    return aside


class Checkpoint:
    """The engine state file in a worker's data dir."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.last_saved: float | None = None

    def _discard_legacy(self) -> None:
        for name in LEGACY_FILENAMES:
            old = self.path.with_name(name)
            if old.exists():
                aside = _move_aside(old)
                log.warning("checkpoint %s is a pickle from an older Lookout, never loaded: moved to %s; "
                            "starting fresh", old, aside)

    def load(self, engine: Engine) -> int:
        """Restore ``engine`` from disk; return the number of customers restored (0 if none).

        An unusable file is moved aside (one WARNING line); never fatal, never partial.
        """
        self._discard_legacy()
        try:
            blob = self.path.read_bytes()
        except FileNotFoundError:
            return 0
        except OSError as exc:
            log.warning("checkpoint %s unreadable (%s); starting fresh", self.path, exc)
            return 0
        try:
            return engine.load_all(blob)
        except StateError as exc:
            aside = _move_aside(self.path)
            log.warning("checkpoint %s not used (%s): moved to %s; starting fresh", self.path, exc, aside)
            return 0

    def save(self, engine: Engine) -> int:
        """Write the engine state atomically; return the size in bytes."""
        blob = engine.dump_all()
        write_atomically(self.path, blob)
        self.last_saved = time.time()
        return len(blob)


def restore(engine: Engine, checkpoint: Checkpoint, initial_state: Path | None = None) -> int:
    """Load the data dir's checkpoint, or ``initial_state`` if that is newer; log one line.

    ``initial_state`` is also used when the checkpoint is missing or unusable. Returns the
    number of customers loaded. A bad ``initial_state`` file is reported (one WARNING) and left
    where it is -- it is the operator's -- and the worker starts fresh.
    """
    use_initial = initial_state is not None
    if use_initial and checkpoint.path.exists():
        try:
            use_initial = Path(initial_state).stat().st_mtime > checkpoint.path.stat().st_mtime
        except OSError:
            pass
    if not use_initial:
        n = checkpoint.load(engine)
        if n:
            log.warning("restored detector state of %d customers from %s", n, checkpoint.path)
        if n or initial_state is None:
            return n
    else:
        checkpoint._discard_legacy()
    try:
        n = engine.load_all(Path(initial_state).read_bytes())
    except (OSError, StateError) as exc:
        log.warning("initial state %s not used (%s); starting fresh", initial_state, exc)
        return 0
    log.warning("loaded initial detector state of %d customers from %s", n, initial_state)
    return n
