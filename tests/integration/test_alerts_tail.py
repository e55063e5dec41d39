"""``lookout alerts tail`` against the real broker, run as a user runs it (a subprocess)."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from kafka import KafkaProducer

from detectors.engine import Engine
from detectors.events import format_ts
from detectors.synthetic import SimConfig, simulate
from streams.pipeline.processor import Processor

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def alerts():
    """Real alerts: the worker's code path over a simulated origin outage and a traffic drop."""
    sim = simulate(SimConfig(customers=4, duration_s=3 * 86400, interval_s=300, seed=21, incidents=2,
                             kinds=("origin_outage", "traffic_drop"), size_min=5000, tiny_fraction=0.0,
                             level_shifts=False, holidays=False))
    proc, out = Processor(Engine()), None
    for e in sim.events():
        out = proc.handle(json.dumps(e), out=out)
    firing = [a for a in out.alerts if a["status"] == "firing"]
    assert len({a["customer_id"] for a in firing}) >= 2, out.alerts
    return out.alerts


def send(bootstrap, topic, items, timestamp_ms=None):
    p = KafkaProducer(bootstrap_servers=bootstrap)
    for a in items:
        p.send(topic, key=a["customer_id"].encode(), value=json.dumps(a).encode(), timestamp_ms=timestamp_ms)
    p.flush()
    p.close()


def tail(bootstrap, topic, *args, **popen):
    cmd = [
        sys.executable,
        "-m",
        "streams.cli",
        "alerts",
        "tail",
        "--bootstrap",
        bootstrap,
        "--topic",
        topic,
        *args,
    ]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL, env={**os.environ, "NO_COLOR": "1"}, **popen)


def test_since_customer_and_json(kafka_bootstrap, kafka_topics, alerts):
    topic = kafka_topics("alerts", partitions=2)
    old, new = alerts[:1], alerts[1:]
    send(kafka_bootstrap, topic, old, timestamp_ms=int((time.time() - 3 * 3600) * 1000))
    send(kafka_bootstrap, topic, new)

    out, err = tail(kafka_bootstrap, topic, "--since", "2h", "--no-follow", "--json").communicate(timeout=60)
    got = [json.loads(line) for line in out.splitlines()]
    assert sorted(a["alert_id"] + a["status"] for a in got) == sorted(
        a["alert_id"] + a["status"] for a in new
    ), err

    who = new[0]["customer_id"]
    out, err = tail(kafka_bootstrap, topic, "--since", "1d", "--no-follow", "--json", "--customer", who
                    ).communicate(timeout=60)
    got = [json.loads(line) for line in out.splitlines()]
    assert got and {a["customer_id"] for a in got} == {who}
    assert len(got) == sum(1 for a in alerts if a["customer_id"] == who)


def test_follows_new_alerts_readably_and_ctrl_c_exits_0(kafka_bootstrap, kafka_topics, alerts):
    topic = kafka_topics("alerts", partitions=2)
    started = format_ts(time.time() - 1)
    proc = tail(kafka_bootstrap, topic, "--since", started)
    try:
        time.sleep(1.0)
        firing = next(a for a in alerts if a["status"] == "firing")
        resolved = next(a for a in alerts if a["status"] == "resolved")
        send(kafka_bootstrap, topic, [firing, resolved])
        lines = [proc.stdout.readline() for _ in range(3)]  # firing: 2 lines (what, diagnosis); resolved: 1
    finally:
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=30)
    when = firing["event_ts"][5:16].replace("T", " ")
    assert lines[0].startswith(f"{when}  FIRING    {firing['customer_id']}")
    assert firing["severity"] in lines[0] and "vs expected" in lines[0]
    assert lines[1].strip() == f"-> {firing['diagnosis']}"
    assert lines[2].startswith(
        resolved["event_ts"][5:16].replace("T", " ") + "  RESOLVED  " + resolved["customer_id"]
    )
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "\x1b[" not in "".join(lines) + rest


def test_tail_without_click_prints_what_the_command_prints(kafka_bootstrap, kafka_topics, alerts):
    import io

    from streams.settings import Settings
    from streams.sinks.alert_tail import tail as tail_alerts

    topic = kafka_topics("alerts", partitions=2)
    send(kafka_bootstrap, topic, alerts)
    s = Settings.from_env({}, bootstrap=kafka_bootstrap, alerts_topic=topic)
    who = alerts[0]["customer_id"]
    out = io.StringIO()
    n = tail_alerts(s, time.time() - 3600, [who], follow=False, as_json=True, out=out)
    got = [json.loads(line) for line in out.getvalue().splitlines()]
    assert n == len(got) == sum(1 for a in alerts if a["customer_id"] == who) > 0
    out = io.StringIO()
    assert tail_alerts(s, None, follow=False, out=out) == 0 and out.getvalue() == ""  # only new ones
    out = io.StringIO()
    tail_alerts(s, time.time() - 3600, follow=False, out=out)
    assert "FIRING" in out.getvalue() and "\033[" not in out.getvalue()  # readable, no colours off a TTY
