"""State files: the worker's start-up state (``--initial-state``) and what older versions left.

A running worker keeps its detector state in Kafka (per input partition, see
:mod:`streams.state`), so a restart on any host resumes warm. Files are for two
things only:

* ``lookout replay --save-state FILE`` writes the learned state of a replay (the format of
  :mod:`detectors.state`: data, never code) and ``lookout worker --initial-state FILE`` starts
  from it, so a new deployment is neither blind nor noisy for its first weeks; customers that
  have state in the state topic use that instead.
* State files that older Lookouts kept in the data dir (``engine-state.pickle``,
  ``engine-state.lookout``) are never read: each is moved aside with one WARNING line.

An ``--initial-state`` file that cannot be used -- garbage, truncated, another format version,
other model settings, a pickle -- is reported with one WARNING line and the worker starts cold;
nothing in it is run.
"""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from detectors.engine import Engine
from detectors.state import StateError

log = logging.getLogger("lookout.checkpoint")
#: state files older Lookouts kept in the data dir: never loaded, moved aside on start
LEGACY_FILENAMES = ("engine-state.pickle", "engine-state.lookout")


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


def discard_legacy(data_dir: Path, state_topic: str) -> list[Path]:
    """Move state files of older Lookouts out of the way, unread; one WARNING line each."""
    moved = []
    for name in LEGACY_FILENAMES:
        old = Path(data_dir) / name
        if old.exists():
            aside = _move_aside(old)
            moved.append(aside)
            log.warning("%s is a state file of an older Lookout and is never loaded (state now lives in the "
                        "Kafka topic %s): moved to %s", old, state_topic, aside)
    return moved


def load_initial_state(engine: Engine, path: Path | None) -> int:
    """Load ``--initial-state`` into ``engine``; return the customers loaded (0 and one WARNING if
    unusable)."""
    if path is None:
        return 0
    try:
        n = engine.load_all(Path(path).read_bytes())
    except (OSError, StateError) as exc:
        log.warning("initial state %s not used (%s); starting fresh", path, exc)
        return 0
    log.warning("loaded initial detector state of %d customers from %s", n, path)
    return n
