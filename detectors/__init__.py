"""Lookout detectors: pure-Python, River-style anomaly detection and alerting.

Nothing in this package imports Faust, Kafka or Prometheus code: everything that decides
*whether* to alert lives here and is shared by the live worker and replay.
"""
from .config import DetectorConfig, load_config
from .engine import Engine
from .events import Event, InvalidEvent, parse_event
from .univariate import GenericDetector, RatioDetector, SeasonalDetector, make_detector
from .verdict import Verdict

__all__ = [
    "DetectorConfig",
    "Engine",
    "Event",
    "GenericDetector",
    "InvalidEvent",
    "RatioDetector",
    "SeasonalDetector",
    "Verdict",
    "load_config",
    "make_detector",
    "parse_event",
]
