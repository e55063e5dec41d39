"""The worker's Faust app: Faust sensors on the worker's registry without duplicate registration,
the lean monitor, sinks registered only when configured. Every test has its own CollectorRegistry."""
from __future__ import annotations

from types import SimpleNamespace

from prometheus_client import CollectorRegistry, generate_latest

from streams.settings import Settings
from tests.streams.conftest import BrokenStream, samples


def test_faust_sensors_are_on_the_workers_registry_and_two_apps_do_not_clash(tmp_path):
    from streams.worker.app import create_app

    regs = []
    for i in range(2):
        s = Settings.from_env({}, data_dir=tmp_path / f"w{i}", app_id=f"metrics-test-{i}")
        lk = create_app(s)
        regs.append(lk.registry)
        text = generate_latest(lk.registry).decode()
        assert "faust_messages_received_total" in text
        assert "lookout_events_total" in text
    assert regs[0] is not regs[1]
    # and with an injected registry and Faust's full monitor, plus the default lean one
    reg = CollectorRegistry()
    lk = create_app(Settings.from_env({}, data_dir=tmp_path / "w3", faust_metrics=True), registry=reg)
    assert lk.registry is reg and "faust_total_events_total" in generate_latest(reg).decode()
    lk = create_app(Settings.from_env({}, data_dir=tmp_path / "w4"), registry=CollectorRegistry())

    def received():
        return lk.registry.get_sample_value("faust_messages_received_total")

    lk.app.monitor.on_message_in(None, 0, None)  # per message: no work, nothing counted
    assert received() == 0
    lk.app.monitor.received(500)  # the agent counts once per batch
    assert received() == 500


def test_lean_monitor_end_offsets_follow_records_and_rebalances():
    """The lag panel (end offset - committed offset) reads what Faust reports per record, and a
    rebalance drops the partitions it reported before (the full monitor does the same)."""
    from faust.sensors.prometheus import FaustMetrics
    from faust.types import TP

    from streams.worker.faust_tuning import LeanMonitor

    reg = CollectorRegistry()
    mon = LeanMonitor(FaustMetrics.create(reg, "faust"))

    def ends():
        return {dict(k)["partition"]: v for k, v in samples(reg, "faust_topic_partition_end_offset").items()}

    for offset in range(100, 110):
        mon.track_tp_end_offset(TP("in", 0), offset)
    mon.track_tp_end_offset(TP("in", 3), 42)
    assert ends() == {"0": 109, "3": 42}
    mon.track_tp_end_offset(TP("in", 0), 250)  # a later record: the scrape sees the newest value
    assert ends() == {"0": 250, "3": 42}
    mon.on_rebalance_start(SimpleNamespace(rebalancing_count=1))
    assert ends() == {}
    mon.track_tp_end_offset(TP("in", 3), 43)
    assert ends() == {"3": 43}


def test_sinks_are_registered_only_when_configured_and_their_dlq_series_start_at_zero(tmp_path):
    from streams.worker.app import create_app

    lk = create_app(Settings.from_env({}, data_dir=tmp_path / "a"))
    assert lk.sinks == []
    lk = create_app(
        Settings.from_env(
            {},
            data_dir=tmp_path / "b",
            alertmanager_url="http://127.0.0.1:9",
            webhook_url="http://127.0.0.1:9/hook",
            webhook_token="s3cret",
        )
    )
    assert lk.sinks == ["alertmanager", "webhook"]
    assert set(lk.app.agents) >= {"lookout.detect", "lookout.sink.alertmanager", "lookout.sink.webhook"}
    dlq = samples(lk.registry, "lookout_dlq_messages_total")
    assert (("kind", "webhook"), ("topic", "alerts-dlq")) in dlq
    assert "s3cret" not in generate_latest(lk.registry).decode()


def test_every_agent_that_raises_stops_the_worker_with_status_70(tmp_path, caplog):
    """Faust restarts an agent that raised and its stream carries on past the failed message, so
    a sink would lose a firing or a resolved and the correlator a parent's update. Every agent of
    a worker with both sinks and the correlator must stop the process instead."""
    import asyncio

    from streams.worker.app import create_app
    from streams.worker.runtime import EXIT_AGENT_FAILED

    lk = create_app(Settings.from_env({}, data_dir=tmp_path / "c", alertmanager_url="http://127.0.0.1:9",
                                      webhook_url="http://127.0.0.1:9/hook", correlator=True))
    assert lk.correlation is not None
    lk.correlation.table.ready.set()  # (the correlator's agents wait for the catalogue first)
    exits: list[int] = []
    lk.runtime.exit = exits.append
    names = sorted(lk.app.agents)
    assert {"lookout.detect", "lookout.sink.alertmanager", "lookout.sink.alertmanager.incidents",
            "lookout.sink.webhook", "lookout.sink.webhook.incidents", "lookout.correlate.groups",
            "lookout.correlate.parents"} <= set(names)
    for name in names:
        exits.clear()
        caplog.clear()
        asyncio.run(lk.app.agents[name].fun(BrokenStream()))
        assert exits == [EXIT_AGENT_FAILED], name
        assert f"agent {name} failed" in caplog.text and "bug reached through stream" in caplog.text


def test_the_producer_gives_up_on_a_request_the_broker_never_answers(tmp_path):
    """Faust's producer waited 20 minutes for an unanswered request (a metadata request lost on a
    loaded machine froze every send of a worker); the setting bounds the wait for each answer,
    while records are still retried for Faust's 20 minutes."""
    import asyncio
    import socket
    import time

    from streams.worker.app import create_app

    silent = socket.socket()  # accepts connections, reads, never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    port = silent.getsockname()[1]
    s = Settings.from_env({}, data_dir=tmp_path / "w", app_id="silent-broker", bootstrap=f"127.0.0.1:{port}",
                          producer_request_timeout_s=1.0)

    async def start() -> tuple[float, BaseException | None, float]:
        producer = create_app(s, registry=CollectorRegistry()).app.producer._new_producer()
        t0 = time.monotonic()
        try:
            await asyncio.wait_for(producer.start(), 30)
        except asyncio.TimeoutError:
            raise AssertionError("the producer still waited on the silent broker after 30 s") from None
        except Exception as exc:  # it gave up on the broker: how fast?
            return time.monotonic() - t0, exc, producer._message_accumulator._batch_ttl
        finally:
            await producer.stop()
        return time.monotonic() - t0, None, 0.0

    try:
        took, exc, ttl = asyncio.run(start())
    finally:
        silent.close()
    assert exc is not None and took < 10, (took, exc)
    assert ttl == 1200.0  # what it sends is kept as long as before
