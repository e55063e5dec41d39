"""``lookout correlator`` and ``LOOKOUT_CORRELATOR_STAGES=apart``: the stages leave the detection
worker (which keeps publishing to them) and run in a process of their own, in their own consumer
group, with the same supervision and pages. (On a real broker: tests/integration/test_correlator.py.)"""
from __future__ import annotations

import asyncio

import pytest
from click.testing import CliRunner
from prometheus_client import CollectorRegistry, generate_latest

from streams.correlation.agents import GROUPS_AGENT, PARENTS_AGENT
from streams.settings import Settings, SettingsError
from tests.streams.conftest import BrokenStream

STAGES = {GROUPS_AGENT, PARENTS_AGENT}


def test_a_worker_with_the_stages_apart_publishes_but_runs_no_stage(tmp_path):
    from streams.worker.app import create_app

    here = create_app(Settings.from_env({}, data_dir=tmp_path / "a"), registry=CollectorRegistry())
    apart = create_app(Settings.from_env({"LOOKOUT_CORRELATOR_STAGES": "apart"}, data_dir=tmp_path / "b"),
                       registry=CollectorRegistry())
    assert STAGES <= set(here.app.agents)
    assert not STAGES & set(apart.app.agents) and "lookout.detect" in apart.app.agents
    # still the publisher the runtime hands every batch to, and the topics the sinks read
    assert apart.runtime.correlation is apart.correlation.publisher
    assert apart.app.conf.id == here.app.conf.id == "lookout"


def test_the_correlator_process_runs_only_the_stages_in_its_own_group(tmp_path):
    from streams.worker.correlator_app import create_correlator_app

    reg = CollectorRegistry()
    proc = create_correlator_app(Settings.from_env({}, data_dir=tmp_path / "c", app_id="shop"), registry=reg)
    assert set(proc.app.agents) == STAGES
    # its own consumer group (Faust would hand a member of the workers' group input partitions),
    # the workers' topics
    assert proc.app.conf.id == "shop-correlator"
    assert {"shop-onsets", "shop-parents", "shop-correlator-state", "alerts-routed",
            "incidents"} <= set(proc.correlation.topics)
    text = generate_latest(reg).decode()
    for series in ("lookout_parents_open", "lookout_correlator_watermark_lag_seconds",
                   'lookout_dlq_messages_total{kind="contract",topic="request-metrics-dlq"} 0.0'):
        assert series in text
    assert "lookout_events_total" not in text  # no detection here


def test_the_correlator_is_unhealthy_until_it_has_the_catalogue_and_a_failed_stage_stops_it(tmp_path, caplog):
    from streams.worker.correlator_app import create_correlator_app
    from streams.worker.runtime import EXIT_AGENT_FAILED

    proc = create_correlator_app(Settings.from_env({}, data_dir=tmp_path / "d"), registry=CollectorRegistry())
    ok, body = proc.healthz()
    assert not ok and body["reason"] == "reading the customer catalogue" and body["role"] == "correlator"
    proc.correlation.table.ready.set()
    ok, body = proc.healthz()
    assert ok and body["stage_two"] is False and body["watermark_lag_s"] is None
    exits: list[int] = []
    proc.exit = exits.append
    for name in sorted(STAGES):
        exits.clear()
        asyncio.run(proc.app.agents[name].fun(BrokenStream()))
        assert exits == [EXIT_AGENT_FAILED], name
        assert f"agent {name} failed" in caplog.text
    ok, body = proc.healthz()
    assert not ok and "bug reached through stream" in body["reason"]


def test_stages_setting_and_command_refuse_what_cannot_work():
    from streams.cli import cli

    with pytest.raises(SettingsError, match="CORRELATOR_STAGES: 'elsewhere' is not one of here, apart"):
        Settings.from_env({"LOOKOUT_CORRELATOR_STAGES": "elsewhere"})
    r = CliRunner().invoke(cli, ["correlator"], env={"LOOKOUT_CORRELATOR": "false"})
    assert r.exit_code == 1 and "nothing for `lookout correlator` to run" in r.output
    r = CliRunner().invoke(cli, ["worker", "--correlator-stages", "there"])
    assert r.exit_code == 2 and "'there' is not one of 'here', 'apart'" in r.output


def test_a_worker_with_the_stages_apart_says_when_no_correlator_runs_them(caplog):
    """Alerts wait for the stages: a worker that leaves them apart warns (once) while no process
    runs them, says when one is back, and shows the count as a gauge (deploy/rules.yml alerts on 0)."""
    import logging

    from streams.correlation.agents import StagesWatch
    from streams.correlation.metrics import CorrelationMetrics

    class Reader:
        answers = [0, 0, RuntimeError("coordinator not available"), 1]

        async def group_members(self, group):
            assert group == "shop-correlator"
            a = self.answers.pop(0)
            if isinstance(a, Exception):
                raise a
            return a

    reg = CollectorRegistry()
    watch = StagesWatch("shop-correlator", CorrelationMetrics(reg).processes.labels("shop-correlator"))
    reader = Reader()

    def gauge():
        return reg.get_sample_value("lookout_correlator_processes", {"group": "shop-correlator"})

    caplog.set_level(logging.INFO, "lookout.correlation")
    asyncio.run(watch.check(reader))
    assert gauge() == 0 and [r.levelname for r in caplog.records] == ["WARNING"]
    assert "consumer group shop-correlator is empty): alerts wait" in caplog.text
    asyncio.run(watch.check(reader))  # still none: said once
    asyncio.run(watch.check(reader))  # no answer: the gauge keeps the last count
    assert gauge() == 0 and len(caplog.records) == 1
    asyncio.run(watch.check(reader))
    assert gauge() == 1 and caplog.records[-1].levelname == "INFO" and "runs again" in caplog.text


def test_the_processes_gauge_has_no_series_where_the_worker_runs_the_stages(tmp_path):
    from streams.worker.app import create_app

    here = create_app(Settings.from_env({}, data_dir=tmp_path / "e"), registry=CollectorRegistry())
    assert "lookout_correlator_processes{" not in generate_latest(here.registry).decode()


def test_a_correlator_message_it_cannot_use_is_parked_with_the_reason_and_counted():
    """One dead-letter path for the correlator's topics, in a worker and in `lookout correlator`."""
    import json

    from streams.correlation.agents import contract_dead_letter
    from streams.pipeline.metrics import dlq_counter

    sent = []

    class Topic:
        async def send(self, key, value):
            sent.append((key, json.loads(value)))

    reg = CollectorRegistry()
    dead_letter = contract_dead_letter(Topic(), dlq_counter(reg), "request-metrics-dlq", clock=lambda: 1e9)
    asyncio.run(dead_letter(b"k", b"not json", "not a JSON object", "shop-parents"))
    ((key, record),) = sent
    assert key == b"k" and record["reason"] == "not a JSON object" and record["kind"] == "contract"
    assert record["source"] == "shop-parents"
    assert reg.get_sample_value("lookout_dlq_messages_total",
                                {"topic": "request-metrics-dlq", "kind": "contract"}) == 1
