"""The input topic grows under workers that send to Alertmanager: after the repartition command
and a restart every incident open across the growth is still resolved there, and stays resolved,
and no worker's sink fails on a partition its open-alerts store does not have (real broker).

With the correlator off the sink reads ``alerts``: that is the topic that grows, and with it the
partitions of the open-alerts store. With it on (the default) the sink reads what the correlator
routes, and the alerts the repartition's drain produces must reach its stage two too.
Alertmanager is a recorder of what the sink posts, not the real one: a real Alertmanager ends an
alert nobody re-sends after three re-send periods, so a sink that stopped sending looked like one
that sent every resolution (a first version of this test passed against it while the sink agent
hung).
"""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from detectors.engine import Engine
from detectors.events import parse_ts
from streams.pipeline.codecs import partition_of
from streams.pipeline.processor import Processor

from .conftest import produce
from .test_faults import events_seen, wait_until, workload
from .test_repartition import AFTER, BEFORE, drained, grow, repartition

pytestmark = pytest.mark.integration

#: the sink re-sends open alerts this often (Alertmanager would end one not re-sent in 3 x this)
RESEND_S = 1.0
#: Faust commits the sinks' offsets this often (the worker's broker_commit_interval), and then some
SINK_COMMIT_S = 3.0
#: how long the last word on every alert must stay the same (a stale owner re-sends every RESEND_S)
STEADY_S = 5 * RESEND_S


class AlertmanagerRecorder:
    """Alertmanager's v2 POST /api/v2/alerts, recorded: the last word per label set decides
    whether Alertmanager shows an alert (an ``endsAt`` in the past ends it)."""

    def __init__(self):
        self.last: dict[tuple, tuple[float, bool]] = {}  # label set -> (received, firing)
        self.ends: dict[tuple, int] = {}  # label set -> how many times it was ended
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                now = time.time()
                with outer.lock:
                    for a in body:
                        labels = a["labels"]
                        if "customer" not in labels:  # a parent incident (correlator): not at stake
                            continue
                        key = (labels["customer"], labels["alert_id"], labels["severity"])
                        firing = parse_ts(a["endsAt"]) > now
                        outer.last[key] = (now, firing)
                        outer.ends[key] = outer.ends.get(key, 0) + (not firing)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def firing(self) -> set[tuple]:
        with self.lock:
            return {k for k, (_, f) in self.last.items() if f}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def replay_alerts(messages) -> list[dict]:
    return Processor(Engine()).handle_many((None, v, "file", None, None) for _, v in messages).alerts


def open_at_end(alerts: list[dict]) -> set[tuple[str, str, str]]:
    """(customer, alert_id, severity) of every incident still firing after the last alert."""
    last = {a["alert_id"]: a for a in alerts}
    return {(a["customer_id"], a["alert_id"], a["severity"]) for a in last.values()
            if a["status"] == "firing"}


def moved(cid: str) -> bool:
    return partition_of(cid, BEFORE) != partition_of(cid, AFTER)


def growth_point(messages, truth: list[dict]) -> tuple[int, set[str]]:
    """Where to grow the topic: the message before which the most incidents of moved customers
    have fired and not yet resolved; and those incidents' ids (the ones at stake)."""
    fired = {a["alert_id"]: a["event_ts"] for a in reversed(truth) if a["status"] == "firing"
             and moved(a["customer_id"])}  # reversed: the first firing of each wins
    resolved = {a["alert_id"]: a["event_ts"] for a in truth if a["status"] == "resolved"}
    best: tuple[int, set[str]] = (0, set())
    for i in range(len(messages) // 4, 3 * len(messages) // 4, 50):
        ts = json.loads(messages[i][1])["ts"]
        open_then = {aid for aid, t in fired.items() if t < ts <= resolved.get(aid, "~")}
        if len(open_then) > len(best[1]):
            best = (i, open_then)
    return best


@pytest.mark.parametrize("correlator", ["false", "true"], ids=["sink-reads-alerts", "correlator-routes"])
def test_incidents_open_across_a_repartition_are_resolved_at_alertmanager(start_worker, correlator):
    messages = workload(seed=36, customers=24, days=5)
    truth = replay_alerts(messages)
    n = len(messages)
    cut, at_stake = growth_point(messages, truth)
    assert len(at_stake) >= 2, "the workload has too few incidents of moved customers open at any time"
    parts = [0, cut, cut + n // 5, n]  # before the growth / after it / after the repartition

    am = AlertmanagerRecorder()
    try:
        sinks = dict(LOOKOUT_ALERTMANAGER_URL=am.url, LOOKOUT_ALERTMANAGER_RESEND_S=RESEND_S,
                     LOOKOUT_CORRELATOR=correlator)
        w1 = start_worker(partitions=BEFORE, LOOKOUT_SNAPSHOT_INTERVAL_S=2, **sinks)
        w2 = start_worker(like=w1)
        produce(w1.bootstrap, w1.input_topic, messages[parts[0]:parts[1]])
        wait_until(lambda: events_seen(w1) + events_seen(w2) >= parts[1], 180, "the events before the growth")
        # the sinks told Alertmanager of every incident at stake (and keep them open: records)
        wait_until(lambda: at_stake <= {k[1] for k in am.last}, 60, "the incidents at stake at Alertmanager")
        time.sleep(SINK_COMMIT_S)
        grow(w1.bootstrap, w1.input_topic, AFTER)
        produce(w1.bootstrap, w1.input_topic, messages[parts[1]:parts[2]])
        for w in (w1, w2):
            w.proc.wait(timeout=60)
            assert w.proc.returncode == 78, w.log_tail()
        done = repartition(w1, AFTER)
        print(done.stdout)
        assert done.returncode == 0, done.stderr
        if correlator == "false":  # (the correlator's routed topic keeps its partitions: nothing moves)
            assert "open alerts of" in done.stdout  # moved to the customers' new partitions
        for w in (w1, w2):
            w.start()
        produce(w1.bootstrap, w1.input_topic, messages[parts[2]:])
        wait_until(lambda: drained((w1, w2), AFTER), 180, "the workers to own every partition and drain it")

        expected = open_at_end(truth)
        resolved_ids = {a["alert_id"] for a in truth if a["status"] == "resolved"}
        ended = lambda: {k for k in am.ends if k[1] in at_stake}  # noqa: E731
        try:
            wait_until(lambda: am.firing() == expected and {k[1] for k in ended()} == at_stake, 60,
                       "every incident at stake ended at Alertmanager", poll=0.5)
            time.sleep(STEADY_S)  # and still so after several re-send periods
        except AssertionError:
            pass  # the assertions below say what is wrong
        finally:
            got, twice = am.firing(), sum(c > 1 for k, c in am.ends.items() if k[1] in at_stake)
            print(f"\n{len(at_stake)} incidents of moved customers open across the growth: "
                  f"{len({k[1] for k in ended()})} ended at Alertmanager ({twice} label sets twice); "
                  f"firing at the end {len(got)}, in replay {len(expected)}")
        assert got == expected, (f"firing but resolved: {sorted(got - expected)}; "
                                 f"open but not firing: {sorted(expected - got)}")
        assert {k[1] for k in ended()} == at_stake, sorted(at_stake - {k[1] for k in ended()})
        assert not [k for k, (_, f) in am.last.items() if f and k[1] in resolved_ids]
        for w in (w1, w2):
            assert w.proc.poll() is None, w.log_tail()
            log = w.log_path.read_text(errors="replace")
            assert "Unrecognized partition" not in log and "Traceback" not in log, w.log_tail(80)
    finally:
        am.close()
