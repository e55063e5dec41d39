"""What the offline tests share: a small labelled simulation as files."""
import pytest
import yaml

from detectors.synthetic import SimConfig, simulate
from streams.offline.simfiles import write_jsonl, write_labels


@pytest.fixture(scope="session")
def files(tmp_path_factory):
    """``sim.jsonl`` (5 customers, 2.5 days, 3 incidents), ``labels.jsonl`` and a search ``space.yaml``."""
    d = tmp_path_factory.mktemp("tune")
    sim = simulate(SimConfig(customers=5, duration_s=2.5 * 86400, interval_s=300, seed=11, incidents=3,
                             size_min=2000, tiny_fraction=0.0, holidays=False))
    write_jsonl(sim.events(), d / "sim.jsonl")
    write_labels(sim.incidents, d / "labels.jsonl")
    (d / "space.yaml").write_text(yaml.safe_dump({
        "signals.error_5xx.threshold": {"low": 0.99, "high": 0.99999},
        "signals.requests.min_rel_change": {"low": 0.3, "high": 2.0},
        "alerting.open_n": {"choices": [1, 2, 3]},
        "model.warmup_points": {"low": 6, "high": 24, "step": 6},
    }))
    return d
