"""Webhook sink against a real local HTTP endpoint that fails, then recovers."""
import asyncio

from aiohttp import web

from streams.sinks.webhook import WebhookSink, idempotency_key
from tests.conftest import free_ports


def alert(aid, status="firing", notification=1, cid="acme"):
    return {"alert_id": aid, "status": status, "notification": notification, "customer_id": cid,
            "severity": "critical", "signal": "error_5xx"}


class Endpoint:
    """A ticketing system stand-in: dedups by Idempotency-Key, can be told to fail."""

    def __init__(self, fail_first=0, status=503):
        self.fail_first = fail_first
        self.status = status
        self.requests = 0
        self.accepted: dict[str, dict] = {}
        self.order: list[str] = []
        self.duplicates = 0
        self.auth: set[str] = set()

    async def handle(self, request):
        self.requests += 1
        self.auth.add(request.headers.get("Authorization", ""))
        if self.requests <= self.fail_first:
            return web.Response(status=self.status, text="down for maintenance")
        key = request.headers["Idempotency-Key"]
        if key in self.accepted:
            self.duplicates += 1
        else:
            self.accepted[key] = await request.json()
            self.order.append(key)
        return web.json_response({"ok": True})


async def serve(endpoint, port):
    app = web.Application()
    app.router.add_post("/hook", endpoint.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


def run(coro):
    return asyncio.run(coro)


def test_nothing_is_lost_while_the_endpoint_is_down_and_each_state_arrives_once():
    async def scenario():
        port = free_ports(1)[0]
        ep = Endpoint(fail_first=15)
        dead = []

        async def dlq(a, reason):
            dead.append((a, reason))

        sink = WebhookSink(
            f"http://127.0.0.1:{port}/hook",
            token="s3cret",
            max_attempts=40,
            base_delay_s=0.01,
            max_delay_s=0.05,
            on_dead_letter=dlq,
            lanes=3,
            max_in_flight=5,
        )
        alerts = []
        for i in range(6):
            alerts += [alert(f"a{i}"), alert(f"a{i}", notification=2), alert(f"a{i}", "resolved", 3)]
        # the endpoint is not even listening for the first attempts (connection refused)
        delivery = asyncio.ensure_future(sink.deliver_all(alerts))
        await asyncio.sleep(0.15)
        runner = await serve(ep, port)
        results = await asyncio.wait_for(delivery, 30)
        # an at-least-once redelivery of the same batch (worker crashed before acking)
        again = await sink.deliver_all(alerts[:4])
        await sink.close()
        await runner.cleanup()
        return ep, dead, results, again, alerts

    ep, dead, results, again, alerts = run(scenario())
    assert dead == [] and set(results) == {"delivered"} and set(again) == {"delivered"}
    assert set(ep.accepted) == {idempotency_key(a) for a in alerts}  # every state exactly once
    assert ep.duplicates == 4  # the redelivered ones were recognisable by key
    for i in range(6):  # per alert, states arrive in order
        keys = [k for k in ep.order if k.startswith(f"a{i}:")]
        assert keys == [f"a{i}:firing:1", f"a{i}:firing:2", f"a{i}:resolved:3"]
    assert ep.auth == {"Bearer s3cret"}


def test_after_the_last_attempt_the_alert_is_dead_lettered_with_the_reason():
    async def scenario():
        port = free_ports(1)[0]
        ep = Endpoint(fail_first=10**6, status=503)
        runner = await serve(ep, port)
        dead = []

        async def dlq(a, reason):
            dead.append((a["alert_id"], reason))

        sleeps = []

        async def fake_sleep(s):
            sleeps.append(s)

        sink = WebhookSink(f"http://127.0.0.1:{port}/hook", max_attempts=4, base_delay_s=1.0, max_delay_s=3.0,
                           on_dead_letter=dlq, sleep=fake_sleep, rng=lambda: 1.0)
        res = await sink.deliver_all([alert("x")])
        await sink.close()
        await runner.cleanup()
        return ep, dead, res, sleeps

    ep, dead, res, sleeps = run(scenario())
    assert res == ["dead-lettered"] and ep.requests == 4
    assert dead[0][0] == "x" and "HTTP 503" in dead[0][1] and "4 attempts" in dead[0][1]
    assert sleeps == [1.0, 2.0, 3.0]  # exponential, capped


def test_a_permanent_refusal_is_not_retried():
    async def scenario():
        port = free_ports(1)[0]
        ep = Endpoint(fail_first=10**6, status=400)
        runner = await serve(ep, port)
        dead = []

        async def dlq(a, reason):
            dead.append(reason)

        sink = WebhookSink(
            f"http://127.0.0.1:{port}/hook", max_attempts=5, base_delay_s=0.01, on_dead_letter=dlq
        )
        await sink.deliver_all([alert("y")])
        await sink.close()
        await runner.cleanup()
        return ep, dead

    ep, dead = run(scenario())
    assert ep.requests == 1 and "HTTP 400" in dead[0]


def test_in_flight_is_bounded():
    async def scenario():
        sink = WebhookSink("http://127.0.0.1:9/none", max_in_flight=2, max_attempts=1)
        blocker = asyncio.Event()

        async def slow(a):
            await blocker.wait()
            return "delivered"

        sink._deliver = slow
        await sink.submit(alert("a"))
        await sink.submit(alert("b"))
        third = asyncio.ensure_future(sink.submit(alert("c")))
        await asyncio.sleep(0.05)
        waiting = not third.done()
        blocker.set()
        await asyncio.wait_for(third, 5)
        await sink.close()
        return waiting

    assert run(scenario()) is True


def test_token_is_never_in_repr():
    assert "s3cret" not in repr(WebhookSink("http://x/hook", token="s3cret"))


def test_an_alert_whose_delivery_crashes_is_dead_lettered_not_lost():
    # an alert_id with CR/LF (anyone can produce to the alerts topic) makes aiohttp refuse the
    # Idempotency-Key header with a ValueError: not a retryable HTTP failure, a crash of delivery
    async def scenario():
        port = free_ports(1)[0]
        ep = Endpoint()
        runner = await serve(ep, port)
        dead = []

        async def dlq(a, reason):
            dead.append((a["alert_id"], reason))

        sink = WebhookSink(
            f"http://127.0.0.1:{port}/hook", max_attempts=3, base_delay_s=0.01, on_dead_letter=dlq
        )
        res = await sink.deliver_all([alert("ok-1"), alert("bad\r\nX-Injected: 1"), alert("ok-2")])
        await sink.close()
        await runner.cleanup()
        return ep, dead, res

    ep, dead, res = run(scenario())
    assert res == ["delivered", "dead-lettered", "delivered"]
    assert [aid for aid, _ in dead] == ["bad\r\nX-Injected: 1"]
    assert "delivery crashed: ValueError" in dead[0][1]
    assert set(ep.accepted) == {"ok-1:firing:1", "ok-2:firing:1"}


def test_an_alert_that_cannot_be_dead_lettered_either_is_not_reported_done():
    async def scenario():
        port = free_ports(1)[0]
        ep = Endpoint(fail_first=10**6, status=400)
        runner = await serve(ep, port)

        async def broken_dlq(a, reason):
            raise ConnectionError("DLQ topic unreachable")

        sink = WebhookSink(
            f"http://127.0.0.1:{port}/hook", max_attempts=1, on_dead_letter=broken_dlq, lanes=1
        )
        outcomes = []
        for batch in ([alert("refused")], [alert("crashing\n")]):
            try:
                outcomes.append(await sink.deliver_all(batch))
            except ConnectionError as exc:  # the worker's agent fails: the batch is not acknowledged
                outcomes.append(str(exc))
        ep.fail_first = 0  # the lane survived both
        outcomes.append(await sink.deliver_all([alert("later")]))
        await sink.close()
        await runner.cleanup()
        return outcomes

    assert run(scenario()) == ["DLQ topic unreachable", "DLQ topic unreachable", ["delivered"]]


def test_muted_alerts_are_not_posted_and_every_payload_carries_its_actions():
    async def scenario():
        port = free_ports(1)[0]
        ep = Endpoint()
        runner = await serve(ep, port)
        sink = WebhookSink(f"http://127.0.0.1:{port}/hook", api_url="http://lookout:6066/")
        try:
            quiet = dict(alert("q1"), silenced_by=["mw-1"])
            results = await sink.deliver_all([quiet, alert("a1")])
        finally:
            await sink.close()
            await runner.cleanup()
        assert results == ["muted", "delivered"] and ep.order == ["a1:firing:1"]
        acts = ep.accepted["a1:firing:1"]["actions"]
        assert acts["expected"] == {"method": "POST", "url": "http://lookout:6066/feedback",
                                    "body": {"alert_id": "a1", "verdict": "expected"}}
        assert acts["silence"]["body"] == {"customer_id": "acme", "from": "now", "for": "4h"}

    run(scenario())


def test_a_parent_update_has_its_own_idempotency_key_and_lane():
    from streams.sinks.webhook import _id, idempotency_key

    update = {"schema": "lookout.incident/v1", "parent_id": "p1", "status": "firing", "update": 4}
    assert idempotency_key(update) == "p1:firing:4" and _id(update) == "p1"
    assert idempotency_key({"alert_id": "a", "status": "resolved", "notification": 3}) == "a:resolved:3"
