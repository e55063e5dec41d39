"""Worker -> webhook end to end: the endpoint is down, then recovers; every alert state arrives once."""
import time

import pytest

from detectors.synthetic import SimConfig, simulate
from tests.services import HookEndpoint

from .conftest import produce, read_topic

pytestmark = pytest.mark.integration


def test_alerts_survive_a_webhook_outage_and_arrive_once_per_state(start_worker):
    hook = HookEndpoint(down_for_s=8)
    try:
        worker = start_worker(LOOKOUT_WEBHOOK_URL=hook.url, LOOKOUT_WEBHOOK_MAX_ATTEMPTS=60,
                              LOOKOUT_WEBHOOK_BASE_DELAY_S=0.2, LOOKOUT_WEBHOOK_TOKEN="tok-123")
        sim = simulate(SimConfig(customers=4, duration_s=3 * 86400, interval_s=300, seed=21, incidents=2,
                                 kinds=("origin_outage", "traffic_drop"), size_min=5000, tiny_fraction=0.0,
                                 level_shifts=False, holidays=False))
        n = produce(worker.bootstrap, worker.input_topic, ((e["customer_id"], e) for e in sim.events()))
        worker.wait_for_events(n)
        alerts = read_topic(worker.bootstrap, worker.alerts_topic)
        states = {f"{a['alert_id']}:{a['status']}:{a['notification']}" for a in alerts}
        assert len(states) >= 4  # two incidents, each opened and resolved
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and set(hook.accepted) != states:
            time.sleep(0.5)
        assert hook.refused > 0, "the outage was not exercised"
        assert set(hook.accepted) == states
        assert worker.metric("lookout_sink_deliveries_total", sink="webhook", result="delivered") >= len(
            states
        )
        assert worker.metric("lookout_sink_retries_total", sink="webhook") > 0
        assert "tok-123" not in worker.log_path.read_text()
    finally:
        hook.close()
