"""Engineers' verdicts and windows end to end on the real broker: topic -> worker -> alerts -> webhook.

Ground truth is the replay code path: one :class:`~detectors.steering.SteeredEngine` in this
process over the same events with the same records. The worker learns each record when it is
written, between the events; by the event-time rule it must still produce exactly the same
alerts (lost, duplicate and extra all zero), also when it is SIGKILLed between a verdict and its
effect, and right after the effect.
"""
from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections import Counter

import pytest
from aiohttp import web

from detectors.config import FeedbackConfig
from detectors.engine import Engine
from detectors.events import parse_event, parse_ts
from detectors.history import MemoryHistory
from detectors.steering import SteeredEngine, Steering
from detectors.synthetic import SimConfig, simulate
from streams.state.book import alert_key
from streams.steering.service import Topics, add_window, give_verdict
from streams.steering.store import KafkaStore
from tests.conftest import free_ports

from .conftest import produce, read_topic

pytestmark = pytest.mark.integration

IV = 300
DAY = 86400.0


def workload(seed: int, customers: int = 8, days: int = 4):
    start = (time.time() // DAY - days) * DAY  # recent: the worker takes no event from the future
    kinds = ("origin_outage", "partial_5xx", "latency", "traffic_surge")
    sim = simulate(SimConfig(customers=customers, duration_s=days * DAY, interval_s=IV, seed=seed,
                             start=start, incidents=customers, size_min=2000, small_fraction=0.0,
                             holidays=False, kinds=kinds))
    return [parse_event(e) for e in sim.events()]


def steered(events, st: Steering | None = None):
    eng = SteeredEngine(Engine(), st, MemoryHistory(keep_s=8 * DAY))
    alerts = []
    for i in range(0, len(events), 4096):
        part = events[i:i + 4096]
        alerts += eng.process_many(part).alerts
        eng.history.observe(eng.engine, part, eng.steering.customers)
    return alerts


def incidents(alerts):
    """(firing alert, resolved alert) of every incident that resolved, longest first."""
    res = {a["alert_id"]: a for a in alerts if a["status"] == "resolved"}
    pairs = [(a, res[a["alert_id"]]) for a in alerts
             if a["status"] == "firing" and a["notification"] == 1 and a["alert_id"] in res]
    return sorted(pairs, key=lambda p: parse_ts(p[0]["started_at"]) - parse_ts(p[1]["resolved_at"]))


class Feeder:
    """Produces the workload in event-time segments and waits until the worker has them all."""

    def __init__(self, worker, events):
        self.w, self.events, self.pos = worker, events, 0

    def until(self, t: float) -> None:
        """Every remaining event with ``ts + interval <= t`` (an event is sent once its interval ends)."""
        k = self.pos
        while k < len(self.events) and self.events[k].ts + self.events[k].interval_s <= t:
            k += 1
        self._send(k)

    def rest(self) -> None:
        self._send(len(self.events))

    def _send(self, k: int) -> None:
        batch = [(e.customer_id, json.dumps(e.to_json()).encode()) for e in self.events[self.pos:k]]
        self.pos = k
        if batch:
            produce(self.w.bootstrap, self.w.input_topic, batch)
        self.w.wait_drained(2, timeout=240)


def wait_records(worker, kind: str, n: int, timeout: float = 60.0) -> None:
    """Until the worker has read ``n`` records of ``kind`` (verdict, window)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if worker.metric("lookout_steering_records_total", kind=kind) >= n:
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"worker did not read {n} {kind} records:\n{worker.log_tail()}")


def wait_alert(store: KafkaStore, alert_id: str, timeout: float = 90.0) -> None:
    """Until ``alert_id`` is on the alerts topic: an engineer answers an alert they have seen (the
    worker's input lag is 0 once it has *read* the events; their alerts are produced a little later)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if store.find_alert(alert_id, 0.0) is not None:
            return
        time.sleep(0.5)
    raise AssertionError(f"alert {alert_id} never reached {store.alerts_topic}")


def tally(truth, live):
    t, lv = Counter(map(alert_key, truth)), Counter(map(alert_key, live))
    return {"lost": sum((t - lv).values()), "duplicate": sum(n - 1 for n in lv.values() if n > 1),
            "extra": sum(1 for k in lv if k not in t), "alerts": len(t)}


class Hook:
    """A webhook receiver in a thread: what the support tool gets."""

    def __init__(self):
        self.port = free_ports(1)[0]
        self.got: list[dict] = []
        self._loop = None
        ready = threading.Event()
        threading.Thread(target=self._serve, args=(ready,), daemon=True).start()
        ready.wait(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def _serve(self, ready):
        import asyncio

        async def handle(request):
            self.got.append(await request.json())
            return web.json_response({"ok": True})

        async def main():
            app = web.Application()
            app.router.add_post("/hook", handle)
            runner = web.AppRunner(app)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", self.port).start()
            ready.set()
            while True:
                await asyncio.sleep(3600)

        asyncio.run(main())


def test_every_verdict_and_window_mode_end_to_end_matches_replay(start_worker, kafka_topics):
    events = workload(seed=41)
    plain = steered(events)
    pairs = incidents(plain)
    by_customer: dict[str, tuple] = {}
    for f, r in pairs:
        by_customer.setdefault(f["customer_id"], (f, r))
    chosen = list(by_customer.values())
    assert len(chosen) >= 5, "the workload has incidents on five customers"
    (fa, _), (ex_f, ex_r), (nn, _), (nw_f, nw_r), (lw_f, lw_r) = chosen[:5]
    hook = Hook()
    topics = Topics(kafka_topics("feedback"), kafka_topics("silences"))
    w = start_worker(LOOKOUT_PARTITIONS=2, LOOKOUT_SNAPSHOT_INTERVAL_S=2, LOOKOUT_HISTORY_INTERVAL_S=2,
                     LOOKOUT_FEEDBACK_TOPIC=topics.feedback, LOOKOUT_SILENCES_TOPIC=topics.silences,
                     LOOKOUT_WEBHOOK_URL=hook.url, LOOKOUT_WEBHOOK_BASE_DELAY_S=0.05)
    store = KafkaStore(w.bootstrap, w.alerts_topic)
    fb, st = FeedbackConfig(), Steering()
    # windows announced ahead: notify from inside an open incident on; both over another's range
    t0 = events[0].ts
    st.put_window(add_window(store, fb, customer_id=nw_f["customer_id"], mode="notify",
                             start=parse_ts(nw_f["event_ts"]) + IV,
                             until=parse_ts(nw_r["resolved_at"]) + 4 * 3600, now=t0, by="test",
                             topics=topics))
    st.put_window(add_window(store, fb, customer_id=lw_f["customer_id"], mode="both",
                             start=parse_ts(lw_f["started_at"]), until=parse_ts(lw_r["resolved_at"]),
                             now=t0, by="test", topics=topics))
    feed = Feeder(w, events)
    wait_records(w, "window", 2)
    # each verdict once its alert is on the topic, before the event it takes effect at
    plan = sorted([(parse_ts(fa["event_ts"]) + IV + 60, fa, "false_alarm"),
                   (parse_ts(nn["event_ts"]) + IV + 60, nn, "new_normal"),
                   (parse_ts(ex_r["event_ts"]) + 2 * IV + 60, ex_r, "expected")], key=lambda p: p[0])
    for k, (at, alert, verdict) in enumerate(plan):
        if verdict == "expected":  # a state history checkpoint from before the incident
            feed.until(parse_ts(alert["started_at"]) - IV)
            time.sleep(5)
        feed.until(at)
        wait_alert(store, alert["alert_id"])
        st.put_verdict(give_verdict(store, alert["alert_id"], verdict, now=at, by="test", topics=topics))
        wait_records(w, "verdict", k + 1)
    feed.rest()
    truth = steered(events, st)
    live = read_topic(w.bootstrap, w.alerts_topic, 3000)
    counts = tally(truth, live)
    print(f"\nsteering end to end: {counts}")
    assert counts == {**counts, "lost": 0, "duplicate": 0, "extra": 0} and counts["alerts"] > 0
    assert live != plain  # (the verdicts and windows changed something)
    # each effect happened in the worker
    assert w.metric("lookout_steering_effects_total", effect="resolve") >= 3
    assert w.metric("lookout_steering_effects_total", effect="rebuild") >= 1
    assert w.metric("lookout_steering_effects_total", effect="rebuild_unavailable") == 0
    assert w.metric("lookout_steering_effects_total", effect="accept") >= 1
    resolved = {a["alert_id"]: a for a in live if a["status"] == "resolved"}
    for alert, verdict in ((fa, "false_alarm"), (nn, "new_normal")):  # (expected came after its end)
        assert resolved[alert["alert_id"]]["feedback"]["verdict"] == verdict
    # the sinks: nothing muted was posted; the incident open when the notify window began resolved there
    deadline = time.monotonic() + 60
    sent = {alert_key(a) for a in live if not a.get("silenced_by")}
    while time.monotonic() < deadline and {alert_key(a) for a in hook.got} != sent:
        time.sleep(0.5)
    assert {alert_key(a) for a in hook.got} == sent
    quiet = [a for a in live if a.get("silenced_by")]
    assert {a["alert_id"] for a in quiet} >= {lw_f["alert_id"]}  # kept quiet inside its window
    assert any(a["alert_id"] == nw_f["alert_id"] and a["status"] == "resolved" for a in hook.got)
    assert all("actions" in a for a in hook.got)


def test_a_sigkill_between_a_verdict_and_its_effect_loses_nothing_and_applies_it_once(start_worker,
                                                                                      kafka_topics):
    events = workload(seed=42)
    fa, _ = incidents(steered(events))[0]
    topics = Topics(kafka_topics("feedback"), kafka_topics("silences"))
    w = start_worker(LOOKOUT_PARTITIONS=2, LOOKOUT_SNAPSHOT_INTERVAL_S=2,
                     LOOKOUT_FEEDBACK_TOPIC=topics.feedback, LOOKOUT_SILENCES_TOPIC=topics.silences)
    store = KafkaStore(w.bootstrap, w.alerts_topic)
    feed = Feeder(w, events)
    at = parse_ts(fa["event_ts"]) + IV + 60
    feed.until(at)
    time.sleep(4)  # snapshots cover everything so far
    wait_alert(store, fa["alert_id"])
    st = Steering()
    st.put_verdict(give_verdict(store, fa["alert_id"], "false_alarm", now=at, by="test", topics=topics))
    wait_records(w, "verdict", 1)
    w.kill()  # 1: the verdict is written and read, its effect not applied yet
    w.start()
    feed.until(at + IV)  # the event it takes effect at
    w.kill()  # 2: right after the effect, most likely before a snapshot has it
    w.start()
    feed.rest()
    truth = steered(events, st)
    live = read_topic(w.bootstrap, w.alerts_topic, 3000)
    counts = tally(truth, live)
    print(f"\nSIGKILL around a verdict: {counts}")
    assert counts == {**counts, "lost": 0, "duplicate": 0, "extra": 0} and counts["alerts"] > 0
    mine = [a for a in live if a["alert_id"] == fa["alert_id"] and a["status"] == "resolved"]
    assert len(mine) == 1 and mine[0]["feedback"]["verdict"] == "false_alarm"
    assert at - IV < parse_ts(mine[0]["event_ts"]) <= at  # within one interval of the verdict


def request(method, url, body=None, token=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def test_the_http_api_takes_verdicts_and_alertmanager_silences_behind_a_token(start_worker, kafka_topics,
                                                                              tmp_path):
    from click.testing import CliRunner

    from streams.cli import cli

    topics = Topics(kafka_topics("feedback"), kafka_topics("silences"))
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-token\n")
    w = start_worker(LOOKOUT_FEEDBACK_TOPIC=topics.feedback, LOOKOUT_SILENCES_TOPIC=topics.silences,
                     LOOKOUT_API_TOKEN_FILE=str(token_file))
    base = f"http://127.0.0.1:{w.web_port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            w.healthz()
            break
        except OSError:
            time.sleep(0.5)
    assert request("GET", f"{base}/silences")[0] == 401
    assert request("GET", f"{base}/silences", token="wrong")[0] == 401
    now = time.time()
    silence = {"matchers": [{"name": "customer", "value": "acme", "isRegex": False}],
               "startsAt": now + 3600, "endsAt": now + 7200, "createdBy": "am-user", "comment": "db move"}
    status, body = request("POST", f"{base}/silences", silence, token="s3cret-token")
    assert status == 201 and body["window"]["customer_id"] == "acme" and body["window"]["by"] == "am-user"
    status, body = request("GET", f"{base}/silences", token="s3cret-token")
    assert status == 200 and [x["reason"] for x in body["windows"]] == ["db move"]
    wait_records(w, "window", 1)
    status, body = request("POST", f"{base}/silences", dict(silence, endsAt=now + 30 * DAY),
                           token="s3cret-token")
    assert status == 400 and "longer than the maximum" in body["error"]
    # an alert to give a verdict on
    alert = {"schema": "lookout.alert/v1", "alert_id": "0123456789abcdef", "status": "firing",
             "customer_id": "acme", "started_at": "2026-01-05T10:00:00Z", "event_ts": "2026-01-05T10:05:00Z",
             "details": {"error_5xx": {"observed": 0.2, "expected": 0.01, "surprise": 9.0}}}
    produce(w.bootstrap, w.alerts_topic, [("acme", alert)])
    status, body = request("POST", f"{base}/feedback", {"alert_id": "0123456789abcdef", "verdict": "expected",
                                                        "by": "carol"}, token="s3cret-token")
    assert status == 201 and body["verdict"]["customer_id"] == "acme"
    status, body = request("POST", f"{base}/feedback?alert_id=fedcba9876543210&verdict=false_alarm",
                           token="s3cret-token")
    assert status == 404 and body["error"].startswith("unknown alert id fedcba9876543210")
    wait_records(w, "verdict", 1)
    assert "s3cret-token" not in w.log_tail(400)
    # the command line: same function, exit status 2 for an unknown alert id
    res = CliRunner().invoke(cli, ["feedback", "fedcba9876543210", "--verdict", "expected", "--bootstrap",
                                   w.bootstrap], env={"LOOKOUT_ALERTS_TOPIC": w.alerts_topic,
                                                      "LOOKOUT_FEEDBACK_TOPIC": topics.feedback})
    assert res.exit_code == 2 and "unknown alert id fedcba9876543210" in res.output
    res = CliRunner().invoke(cli, ["silence", "list", "--bootstrap", w.bootstrap],
                             env={"LOOKOUT_SILENCES_TOPIC": topics.silences})
    assert res.exit_code == 0 and "acme" in res.output and "db move" in res.output
