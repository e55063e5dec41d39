"""The one detection code path: validated events in, per-signal scores and alerts out.

The live Faust worker and ``lookout replay`` both feed batches of events to
:meth:`Engine.process_many` through :class:`streams.pipeline.processor.Processor`; nothing else decides
whether to alert. :data:`Engine` is the fleet engine (:mod:`detectors.fleet`: per-fleet arrays,
a compiled kernel); :class:`~detectors.reference.ReferenceEngine` is the same engine on
per-customer River detectors, one event at a time, which the fleet engine is tested to equal
bit for bit. What they return is in :mod:`detectors.verdict`.

>>> from detectors.events import parse_event
>>> eng = Engine()
>>> v = eng.process(parse_event({"customer_id": "c1", "ts": 0, "requests": 10,
...                              "status_4xx": 0, "status_5xx": 0}))
>>> v.outcome, v.alerts
('warming', [])
>>> eng.process(parse_event({"customer_id": "c1", "ts": 0, "requests": 10,
...                          "status_4xx": 0, "status_5xx": 0})).outcome
'duplicate'
"""
from __future__ import annotations

from .fleet import FleetEngine
from .reference import GateOffsets, ReferenceEngine
from .state import StateError
from .verdict import OUTCOMES, BatchVerdict, Verdict

__all__ = ["OUTCOMES", "BatchVerdict", "Engine", "GateOffsets", "ReferenceEngine", "StateError", "Verdict"]

#: the engine every code path uses: the fleet engine (same interface as ReferenceEngine)
Engine = FleetEngine
