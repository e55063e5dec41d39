"""Alertmanager sink logic without an Alertmanager: payloads, open-alert map, resend, escalation.

(The same sink against a real Alertmanager: tests/integration/test_alertmanager.py.)
"""
import asyncio

from streams.sinks.alertmanager import ALERTNAME, AlertmanagerSink, dashboard_url, to_alertmanager


def alert(status="firing", severity="warning", notification=1, cid="acme prod/eu", **kw):
    a = {
        "alert_id": "id1", "status": status, "customer_id": cid, "signal": "error_5xx",
        "signals": ["error_5xx", "origin_errors"], "severity": severity, "score": 0.99999,
        "observed": 0.2, "expected": 0.001, "band": [0.0005, 0.002], "unit": "ratio",
        "started_at": "2026-01-07T17:15:00Z", "event_ts": "2026-01-07T17:20:00Z", "resolved_at": None,
        "notification": notification, "summary": "s", "explanation": "e", "diagnosis": "d",
    }
    a.update(kw)
    return a


class Recording(AlertmanagerSink):
    def __init__(self, *args, ok=True, **kw):
        super().__init__("http://am:9093/", *args, **kw)
        self.posts = []
        self.ok = ok

    async def _post(self, payload):
        self.posts.append(payload)
        return self.ok


def test_payload_has_routing_labels_ticket_annotations_and_times():
    p = to_alertmanager(alert(), grafana_url="http://g:3000/", now=1_800_000_000, expiry_s=180)
    assert p["labels"] == {"alertname": ALERTNAME, "customer": "acme prod/eu", "signal": "error_5xx",
                           "severity": "warning", "alert_id": "id1"}
    ann = p["annotations"]
    assert {"summary", "description", "diagnosis", "observed", "expected", "dashboard"} <= ann.keys()
    assert ann["observed"] == "20.00%" and ann["expected"] == "0.10% (band 0.05%-0.20%)"
    assert ann["dashboard"] == "http://g:3000/d/lookout-customer/lookout-customer?var-customer=acme%20prod%2Feu"
    assert p["startsAt"] == "2026-01-07T17:15:00Z"
    assert p["endsAt"] == "2027-01-15T08:03:00Z"  # now + expiry: re-sent before that
    r = to_alertmanager(
        alert("resolved", resolved_at="2026-01-07T18:00:00Z"), grafana_url="", now=0, expiry_s=1
    )
    assert r["endsAt"] == "2026-01-07T18:00:00Z"


def test_open_alerts_are_remembered_resent_and_forgotten_on_resolve():
    now = [1_800_000_000.0]
    store = {}
    sink = Recording(store, resend_every_s=60, clock=lambda: now[0])

    async def scenario():
        await sink.handle(alert())
        await sink.handle(alert(cid="globex", alert_id="id2"))
        now[0] += 60
        assert await sink.resend() == 2
        await sink.handle(alert("resolved", resolved_at="2026-01-07T18:00:00Z"))
        assert await sink.resend() == 1

    asyncio.run(scenario())
    assert list(store) == ["globex"]
    resent = sink.posts[2]
    assert {p["labels"]["customer"] for p in resent} == {"acme prod/eu", "globex"}
    assert all(p["endsAt"] > sink.posts[0][0]["endsAt"] for p in resent)


def test_escalation_ends_the_alert_under_its_old_label_set():
    sink = Recording({})

    async def scenario():
        await sink.handle(alert())
        await sink.handle(alert(severity="critical", notification=2, event_ts="2026-01-07T17:30:00Z"))

    asyncio.run(scenario())
    new, old = sink.posts[1]
    assert new["labels"]["severity"] == "critical"
    assert old["labels"]["severity"] == "warning" and old["endsAt"] == "2026-01-07T17:30:00Z"


def test_a_failed_resolution_is_retried_by_the_next_resend():
    sink = Recording({}, ok=False)

    async def scenario():
        await sink.handle(alert())
        assert not await sink.handle(alert("resolved", resolved_at="2026-01-07T18:00:00Z"))
        sink.ok = True
        n = await sink.resend()
        return n

    assert asyncio.run(scenario()) == 1
    (resolution,) = sink.posts[-1]
    assert resolution["endsAt"] == "2026-01-07T18:00:00Z"
    assert asyncio.run(sink.resend()) == 0  # sent once, then forgotten


def test_the_annotation_shows_the_values_the_explanation_shows():
    from tests.detectors.test_alerting import Engine, history, outage, run

    eng = Engine()
    n, rnd = history(eng)
    (fire,) = run(eng, [outage(n + k, rnd) for k in range(3)])
    ann = to_alertmanager(fire, grafana_url="http://g", now=1_800_000_000, expiry_s=180)["annotations"]
    label = {"origin_errors": "origin error rate", "error_5xx": "5xx rate"}[fire["signal"]]
    # the outage's two intervals are one run (its evidence is reported: detectors.kernel.RUN_REPORT_DECADES)
    assert fire["details"][fire["signal"]]["window_s"] == 600
    # same numbers: "<label> <observed> vs expected <expected> over the last 10 min (..." (the
    # annotation's expected value also carries its band)
    expected = ann["expected"].split(" (band ")[0]
    assert expected != ann["expected"]
    assert f"{label} {ann['observed']} vs expected {expected} over the last 10 min" in fire["explanation"]


def test_dashboard_url_quotes_the_customer():
    assert dashboard_url("http://g", "a&b") == "http://g/d/lookout-customer/lookout-customer?var-customer=a%26b"


def test_a_muted_notification_is_not_sent_but_an_incident_alertmanager_knows_still_resolves():
    store = {}
    sink = Recording(store, api_url="http://lookout:6066")

    async def scenario():
        # opened inside a window: never sent, so its resolution is not sent either
        await sink.handle(alert(alert_id="q1", silenced_by=["mw-1"]))
        await sink.handle(alert("resolved", alert_id="q1", silenced_by=["mw-1"],
                                resolved_at="2026-01-07T18:00:00Z"))
        assert sink.posts == [] and store == {}
        # opened before the window: an escalation inside it is muted, its resolution is sent
        await sink.handle(alert(alert_id="o1"))
        await sink.handle(alert(alert_id="o1", severity="critical", notification=2, silenced_by=["mw-1"]))
        assert len(sink.posts) == 1
        fb = {"verdict": "false_alarm", "by": "alice", "at": "2026-01-07T17:50:00Z"}
        await sink.handle(alert("resolved", alert_id="o1", notification=3, resolved_at="2026-01-07T18:00:00Z",
                                feedback=fb))
        assert len(sink.posts) == 2 and store == {}
        ann = sink.posts[1][0]["annotations"]
        assert ann["false_alarm_url"] == "http://lookout:6066/feedback?alert_id=o1&verdict=false_alarm"
        assert ann["feedback"] == "false_alarm by alice at 2026-01-07T17:50:00Z"

    asyncio.run(scenario())


def parent(status="firing", severity="critical", update=1, **kw):
    r = {"schema": "lookout.incident/v1", "parent_id": "p1", "status": status, "severity": severity,
         "notification": 1 if status == "firing" else 2, "update": update, "family": "origin:522",
         "scope": {"group": "origin_provider=provider-a", "attribute": "origin_provider",
                   "value": "provider-a", "equivalent": []},
         "summary": "critical: origin errors (522) for 30 of 180 customers with origin_provider=provider-a",
         "cause": "origin errors (522) for 30 of 180 ...", "customers_affected": 30,
         "since": "2026-01-07T17:10:00Z", "event_ts": "2026-01-07T17:20:00Z",
         "resolved_at": "2026-01-07T18:00:00Z" if status == "resolved" else None,
         "children": [{"customer_id": f"c{i}", "status": "firing", "alert_id": f"a{i}"} for i in range(25)]}
    r.update(kw)
    return r


def test_a_parent_is_one_alert_naming_its_scope_and_its_children_carry_its_id():
    p = to_alertmanager(parent(), grafana_url="http://g:3000", now=1_800_000_000, expiry_s=180)
    assert p["labels"] == {"alertname": "LookoutParent", "parent_id": "p1",
                           "scope": "origin_provider=provider-a", "scope_attribute": "origin_provider",
                           "family": "origin:522", "severity": "critical"}
    assert p["annotations"]["children"].startswith("25 child alerts: c0 (firing), ")
    assert p["annotations"]["children"].endswith("and 5 more")
    assert p["startsAt"].startswith("2026-01-07T17:10:00")
    child = to_alertmanager(alert(parent_id="p1"), grafana_url="http://g", now=1_800_000_000, expiry_s=180)
    assert child["labels"]["parent_id"] == "p1"  # the inhibition rule's key
    assert "parent_id" not in to_alertmanager(alert(parent_id=None), grafana_url="http://g", now=0,
                                              expiry_s=1)["labels"]


def test_an_open_parent_is_re_sent_until_it_resolves():
    store = {}
    sink = Recording(store, resend_every_s=60, clock=lambda: 1_800_000_000)

    async def scenario():
        await sink.handle(parent())
        await sink.handle(alert(parent_id="p1"))
        assert await sink.resend() == 2
        await sink.handle(parent("resolved", update=9))
        return await sink.resend()

    assert asyncio.run(scenario()) == 1  # the child is still open; the parent is not
    assert "parent:p1" not in store
    ended = sink.posts[-2][0]
    assert ended["labels"]["alertname"] == "LookoutParent"
    assert ended["endsAt"].startswith("2026-01-07T18:00:00")


def test_a_stray_alert_sends_only_its_resolution_and_is_not_remembered():
    """An alert read from a partition its customer no longer hashes to (written before a
    repartition): the customer's open alerts belong to its new partition's owner, who re-sends
    them; this worker must not, or it would re-send for ever what that owner resolves."""
    store = {"other": {"id9": alert(cid="other", alert_id="id9")}}
    sink = Recording(store)

    async def scenario():
        assert await sink.handle_stray(alert())
        assert await sink.handle_stray(alert("resolved", resolved_at="2026-01-07T18:00:00Z"))
        return await sink.resend()

    assert asyncio.run(scenario()) == 1  # only what it had before
    (resolution,) = sink.posts[0]
    assert resolution["endsAt"] == "2026-01-07T18:00:00Z" and len(sink.posts) == 2
    assert list(store) == ["other"]


def test_a_stray_escalation_ends_the_alert_under_its_lower_severities():
    """The label set it replaces may have reached Alertmanager from the old owner; the new
    owner only knows the escalated alert, so no one else would end it."""
    sink = Recording({})
    escalated = alert(severity="critical", notification=2, event_ts="2026-01-07T17:30:00Z")
    asyncio.run(sink.handle_stray(escalated))
    (ended,) = sink.posts
    assert sorted(p["labels"]["severity"] for p in ended) == ["info", "warning"]
    assert all(p["endsAt"] == "2026-01-07T17:30:00Z" for p in ended) and sink.open == {}


def test_a_resolution_never_reaches_alertmanager_before_a_re_send_of_its_firing():
    """A re-send still on its way when the resolution is handled would otherwise arrive last
    and open the alert again at Alertmanager until it expired (then resolve it a second time)."""
    class Slow(Recording):
        calls = 0

        async def _post(self, payload):
            self.calls += 1
            if self.calls == 2:  # the re-send: answered only when the test says so
                await self.gate.wait()
            self.posts.append(payload)  # in the order they arrive
            return True

    sink = Slow({})

    async def scenario():
        sink.gate = asyncio.Event()
        await sink.handle(alert())
        resend = asyncio.ensure_future(sink.resend())
        await asyncio.sleep(0)
        resolving = asyncio.ensure_future(sink.handle(alert("resolved", resolved_at="2026-01-07T18:00:00Z")))
        await asyncio.sleep(0.01)
        sink.gate.set()
        await asyncio.gather(resend, resolving)

    asyncio.run(scenario())
    assert [p[0]["endsAt"] == "2026-01-07T18:00:00Z" for p in sink.posts] == [False, False, True]
