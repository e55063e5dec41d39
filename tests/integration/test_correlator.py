"""Issue 18 on the real broker: a 50-customer provider outage is one parent incident, its children
are muted at a real Alertmanager, and every child ends resolved although the worker is SIGKILLed
in the middle of the incident."""
from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from functools import partial

import pytest

from detectors.synthetic import SimConfig, simulate
from streams.correlation.customers import publish_catalogue
from streams.kafka.admin import create_topics
from tests.services import get_json, start_alertmanager

from .conftest import produce, read_topic
from .test_faults import wait_until as faults_wait_until

pytestmark = [pytest.mark.integration, pytest.mark.prometheus]

IV = 300
CUSTOMERS = 250
DAYS = 3
#: simulate(SimConfig(customers=250, duration_s=3 days, shared_causes=1, seed=146)) places one
#: shared cause: origin errors at provider-b, 50 of its 57 customers, ~4 hours before the end
SEED = 146


#: the correlator's waits poll every half second
wait_until = partial(faults_wait_until, poll=0.5)


def am_alerts(am) -> list[dict]:
    return get_json(am.url + "/api/v2/alerts?active=true&silenced=true&inhibited=true&unprocessed=true")


@pytest.fixture
def alertmanager(tmp_path):
    """A real Alertmanager with the deployed inhibition rule, stopped after the test."""
    am = start_alertmanager(tmp_path / "am", inhibit=True)
    yield am
    am.stop()


@pytest.mark.timeout(900)
# "256": every state the stages write goes in parts of 256 bytes and is read back from them after
# the SIGKILL (a replayed backlog's stage-two state outgrew Kafka's 1 MB record limit);
# "apart": the worker only publishes, `lookout correlator` runs the stages, and both are SIGKILLed;
# "moved": the worker runs the stages, and comes back from the SIGKILL leaving them to a new
# `lookout correlator`, which carries on from their state (the parent and its children kept)
@pytest.mark.parametrize("state_chunk", ["default", "256", "apart", "moved"])
def test_a_provider_outage_is_one_parent_muting_its_children_all_resolved_across_a_sigkill(
        start_worker, kafka_bootstrap, alertmanager, state_chunk):
    end = math.floor(time.time() / IV) * IV  # live data: it ends now
    sim = simulate(SimConfig(customers=CUSTOMERS, duration_s=DAYS * 86400, interval_s=IV, seed=SEED,
                             shared_causes=1, start=float(end - DAYS * 86400)))
    (cause,) = sim.shared_causes
    assert cause.scope.startswith("origin_provider=") and 45 <= len(cause.customers) <= 60, cause
    am = alertmanager
    w = start_worker(LOOKOUT_PARTITIONS=2, LOOKOUT_ALERTMANAGER_URL=am.url, LOOKOUT_ALERTMANAGER_RESEND_S=10,
                     LOOKOUT_CORRELATOR_GRACE_S=1, LOOKOUT_SNAPSHOT_INTERVAL_S=2,
                     **({"LOOKOUT_CORRELATOR_STATE_CHUNK_BYTES": state_chunk} if state_chunk.isdigit()
                        else {"LOOKOUT_CORRELATOR_STAGES": state_chunk} if state_chunk == "apart" else {}))
    stages = start_worker(like=w, command="correlator") if state_chunk == "apart" else None
    customers_topic, incidents_topic, routed_topic = (f"{w.app_id}-customers", f"{w.app_id}-incidents",
                                                      f"{w.app_id}-routed")
    create_topics(kafka_bootstrap, {customers_topic: 2}, compacted=[customers_topic])
    publish_catalogue(sim.catalogue, customers_topic, kafka_bootstrap, {})
    for proc in (w, stages) if stages else (w,):
        wait_until(partial(lambda p: _metric(p, "lookout_customers") == CUSTOMERS, proc), 120,
                   f"{proc.command} to read the catalogue")

    messages = [(e["customer_id"], json.dumps(e).encode()) for e in sim.events()]
    cut = next(i for i, (_, v) in enumerate(messages) if json.loads(v)["ts"] >= _iso(cause.start + 6 * IV))
    produce(w.bootstrap, w.input_topic, messages[:cut])

    # mid-incident: one parent, firing at Alertmanager, its children muted by it
    def parent_firing():
        recs = [r for r in read_topic(w.bootstrap, incidents_topic, 1000) if r["status"] == "firing"]
        return recs[-1] if recs else None

    parent = wait_until(parent_firing, 240, "a parent incident")
    pid = parent["parent_id"]

    def muted():
        alerts = am_alerts(am)
        source = [a for a in alerts if a["labels"].get("alertname") == "LookoutParent"]
        kids = [a for a in alerts
                if a["labels"].get("parent_id") == pid and a["labels"]["alertname"] != "LookoutParent"]
        if source and kids and all(a["status"]["state"] == "suppressed" for a in kids):
            return source, kids
        return None

    try:
        source, kids = wait_until(muted, 120, "the children muted by their parent at Alertmanager")
    except AssertionError:
        seen = [(a["labels"], a["status"]) for a in am_alerts(am)]
        raise AssertionError(f"Alertmanager has {len(seen)} alerts: {seen[:8]}\n{w.log_tail()}") from None
    assert source[0]["labels"]["parent_id"] == pid and source[0]["labels"]["scope_attribute"] in (
        "origin_provider", "origin_asn")
    assert all(k["status"]["inhibitedBy"] == [source[0]["fingerprint"]] for k in kids)

    # the worker dies mid-incident; a new one takes over and the rest of the stream arrives
    if stages is not None:  # the parent was the correlator process's work, not the worker's
        assert _metric(w, "lookout_parent_updates_total") == 0
        assert _metric(stages, "lookout_parent_updates_total") > 0
        # and the worker sees the process it leaves them to
        wait_until(lambda: _metric(w, "lookout_correlator_processes") == 1, 60,
                   "the worker to count one lookout correlator")
    w.kill()
    if stages is not None:  # and the stages die too, in their own process
        stages.kill()
        stages.start()
    if state_chunk == "moved":  # the stages move out of the worker at its restart
        w.extra_env["LOOKOUT_CORRELATOR_STAGES"] = "apart"
        start_worker(like=w, command="correlator")
    w.start()
    produce(w.bootstrap, w.input_topic, messages[cut:])
    w.wait_drained(2, timeout=300)

    last: dict = {}

    def all_resolved():
        routed = read_topic(w.bootstrap, routed_topic, 1000)
        states = defaultdict(set)
        for a in routed:
            if a.get("parent_id") == pid:
                states[a["alert_id"]].add(a["status"])
        recs = read_topic(w.bootstrap, incidents_topic, 1000)
        done = [r for r in recs if r["parent_id"] == pid and r["status"] == "resolved"]
        last.update(open=[k for k, v in states.items() if "resolved" not in v],
                    parent=[r["status"] for r in recs if r["parent_id"] == pid][-1:])
        if done and all("resolved" in s for s in states.values()):
            return routed, recs
        return None

    try:
        routed, records = wait_until(all_resolved, 300, "every child and the parent to resolve")
    except AssertionError:
        raise AssertionError(f"children still open {last.get('open')}, parent {last.get('parent')}\n"
                             f"{w.log_tail()}") from None
    _one_parent_all_resolved(records, routed, cause, pid)
    # Alertmanager: nothing of the outage left open (every child resolved as itself, the parent too)
    wait_until(lambda: not [a for a in am_alerts(am) if a["labels"].get("parent_id") == pid], 60,
               "Alertmanager to show the outage's alerts resolved")


def _one_parent_all_resolved(records: list[dict], routed: list[dict], cause, pid: str) -> None:
    """The incidents topic has one parent for the outage, localised, its children all resolved;
    every alert folded under it was routed resolved too."""
    parents = {r["parent_id"] for r in records}
    hit = set(cause.customers)
    ours = [p for p in parents if {k["customer_id"] for r in records if r["parent_id"] == p
                                   for k in r["children"]} & hit]
    assert ours == [pid], f"one parent for the outage, got {ours}"
    final = [r for r in records if r["parent_id"] == pid][-1]
    scope = final["scope"]
    assert scope["group"] == cause.scope or cause.scope in scope["equivalent"], scope
    children = {k["customer_id"] for k in final["children"]}
    assert len(children & hit) >= 40 and final["children_open"] == 0
    folded = {a["alert_id"] for a in routed if a.get("parent_id") == pid}
    resolved = {a["alert_id"] for a in routed if a["status"] == "resolved"}
    assert folded and folded <= resolved


def _iso(ts: float) -> str:
    from detectors.events import format_ts

    return format_ts(ts)


def _metric(w, name: str) -> float:
    try:
        return w.metric(name)
    except OSError:
        return -1.0
