"""Lookout against a broker that requires SASL (SCRAM): the worker detects with the right password;
a wrong one makes the worker and the CLI stop at once with one clear line (and never print it)."""
from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid

import pytest

from detectors.events import parse_ts
from detectors.synthetic import SimConfig, simulate
from streams.devtools.broker import LocalBroker
from streams.kafka.admin import BrokerError, KafkaAuthError, create_topics, wait_for_kafka
from streams.kafka.security import kafka_python_kwargs
from streams.settings import Settings
from tests.conftest import START_TIMEOUT_S, free_ports
from tests.tlsfiles import CLIENT_KEY_PASSWORD, make_tls_files

from .conftest import WorkerProcess, produce, read_topic

pytestmark = pytest.mark.integration

USER, PASSWORD, WRONG = "alice", "alice-s3cret-pw", "not-alices-pw"
#: what a user may wait for "wrong password" to be reported (the brief: within ~15 s)
FAIL_FAST_S = 15.0


def sasl_env(mechanism: str = "SCRAM-SHA-256", password: str = PASSWORD) -> dict[str, str]:
    return {"LOOKOUT_KAFKA_SASL_MECHANISM": mechanism, "LOOKOUT_KAFKA_SASL_USERNAME": USER,
            "LOOKOUT_KAFKA_SASL_PASSWORD": password}


def start_broker(tmp_path_factory, environ: dict[str, str], **overrides):
    """A LocalBroker on free ports whose client listener follows the LOOKOUT_KAFKA_* ``environ``."""
    last: BrokerError | None = None
    for _ in range(3):  # a free port can be taken before Kafka binds it
        port, cport = free_ports(2)
        settings = Settings.from_env(environ, broker_port=port, broker_controller_port=cport,
                                     broker_data_dir=tmp_path_factory.mktemp("kafka-secured"), **overrides)
        broker = LocalBroker(settings)
        try:
            broker.start(timeout=START_TIMEOUT_S)
            return broker
        except BrokerError as exc:
            last = exc
            if "already in use" not in str(exc):
                break
    pytest.fail(f"could not start the secured test broker: {last.full()}", pytrace=False)


@pytest.fixture(scope="module")
def sasl_broker(tmp_path_factory):
    """A second LocalBroker whose only client listener is SASL_PLAINTEXT with user alice."""
    broker = start_broker(tmp_path_factory, sasl_env())
    try:
        yield broker
    finally:
        broker.stop()


def security(mechanism: str = "SCRAM-SHA-256", password: str = PASSWORD) -> dict:
    return kafka_python_kwargs(Settings.from_env(sasl_env(mechanism, password)))


def run_cli(*args: str, env: dict[str, str]) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.monotonic()
    res = subprocess.run([sys.executable, "-m", "streams.cli", *args], env={**os.environ, **env},
                         capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    return res, time.monotonic() - t0


def test_the_broker_requires_sasl_and_accepts_alice_with_each_mechanism(sasl_broker):
    for mech in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"):
        wait_for_kafka(sasl_broker.bootstrap, timeout=10, security=security(mech))
    with pytest.raises(KafkaAuthError, match="SCRAM-SHA-512 as user 'alice'"):
        wait_for_kafka(sasl_broker.bootstrap, timeout=10, security=security("SCRAM-SHA-512", WRONG))
    with pytest.raises(BrokerError, match="cannot reach Kafka at .* within 3 s"):
        wait_for_kafka(sasl_broker.bootstrap, timeout=3)  # plaintext gets nowhere


def assert_worker_alerts_on_an_incident(bootstrap: str, env: dict[str, str], tmp_path) -> WorkerProcess:
    """Run `lookout worker` with ``env`` against ``bootstrap``; an injected outage must become an alert."""
    sec = kafka_python_kwargs(Settings.from_env(env))
    run = uuid.uuid4().hex[:8]
    topics = {f"in-{run}": 2, f"alerts-{run}": 2, f"dlq-{run}": 1}
    create_topics(bootstrap, topics, security=sec)
    input_topic, alerts_topic, dlq_topic = topics
    worker = WorkerProcess(bootstrap=bootstrap, input_topic=input_topic, alerts_topic=alerts_topic,
                           dlq_topic=dlq_topic, web_port=free_ports(1)[0], data_dir=tmp_path / "worker",
                           log_path=tmp_path / "worker.log", extra_env=env)
    sim = simulate(SimConfig(customers=4, duration_s=3 * 86400, interval_s=300, seed=21, incidents=1,
                             kinds=("origin_outage",), size_min=5000, tiny_fraction=0.0, level_shifts=False,
                             holidays=False))
    (incident,) = sim.incidents
    try:
        worker.start()
        n = produce(bootstrap, input_topic, ((e["customer_id"], e) for e in sim.events()), **sec)
        worker.wait_for_events(n)
        alerts = read_topic(bootstrap, alerts_topic, **sec)
    finally:
        worker.stop()
    firing = [a for a in alerts if a["status"] == "firing" and a["customer_id"] == incident.customer_id
              and incident.start - 300 <= parse_ts(a["started_at"]) <= incident.end]
    assert firing, f"no alert for {incident} in {alerts}\n{worker.log_tail()}"
    return worker


def test_worker_with_the_right_password_turns_an_incident_into_an_alert(sasl_broker, tmp_path):
    worker = assert_worker_alerts_on_an_incident(sasl_broker.bootstrap, sasl_env(), tmp_path)
    assert PASSWORD not in worker.log_path.read_text(errors="replace")


@pytest.mark.parametrize("command, mechanism", [
    (["worker"], "SCRAM-SHA-256"),
    (["worker"], "PLAIN"),
    (["topics", "create"], "SCRAM-SHA-256"),
    (["simulate", "--customers", "2", "--days", "1", "-q"], "SCRAM-SHA-512"),
    (["replay", "kafka://request-metrics", "-q", "--no-report"], "SCRAM-SHA-256"),
    (["alerts", "tail", "--no-follow"], "SCRAM-SHA-256"),
])
def test_a_wrong_password_fails_fast_with_one_clear_line(sasl_broker, tmp_path, command, mechanism):
    env = {**sasl_env(mechanism, password=WRONG), "LOOKOUT_BOOTSTRAP": sasl_broker.bootstrap,
           "LOOKOUT_DATA_DIR": str(tmp_path / "w"), "LOOKOUT_WEB_PORT": str(free_ports(1)[0])}
    args = list(command)
    if command[0] == "simulate":
        args += ["--bootstrap", sasl_broker.bootstrap]
    if command[0] == "replay":
        args += ["--out", str(tmp_path / "replay")]
    res, took = run_cli(*args, env=env)
    print(f"{' '.join(command[:2])}: exit {res.returncode} after {took:.2f} s: {res.stderr.strip()}")
    assert res.returncode != 0
    assert took < FAIL_FAST_S
    (line,) = res.stderr.strip().splitlines()
    assert line.startswith(
        f"Error: Kafka at {sasl_broker.bootstrap} rejected the connection (SASL_PLAINTEXT, "
        f"{mechanism} as user 'alice'): Authentication failed"
    ), line
    assert WRONG not in res.stdout + res.stderr and "Traceback" not in res.stderr


def test_password_from_a_file_works_and_the_cli_option_overrides_the_environment(sasl_broker, tmp_path):
    pw = tmp_path / "pw"
    pw.write_text(PASSWORD + "\n")
    env = {"LOOKOUT_KAFKA_SASL_MECHANISM": "PLAIN", "LOOKOUT_KAFKA_SASL_USERNAME": "bob",
           "LOOKOUT_KAFKA_SASL_PASSWORD": ""}
    res, _ = run_cli(
        "topics",
        "create",
        "--bootstrap",
        sasl_broker.bootstrap,
        "--kafka-sasl-username",
        USER,
        "--kafka-sasl-mechanism",
        "scram-sha-512",
        "--kafka-sasl-password-file",
        str(pw),
        env=env,
    )
    assert res.returncode == 0, res.stderr
    assert "request-metrics" in res.stdout


# ------------------------------------------------------------------ TLS (mutual)
@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    return make_tls_files(tmp_path_factory.mktemp("tls"))


def tls_env(tls, ca=None, client_cert: bool = True) -> dict[str, str]:
    env = {"LOOKOUT_KAFKA_SSL_CAFILE": str(ca or tls.ca)}
    if client_cert:
        env.update(
            {
                "LOOKOUT_KAFKA_SSL_CERTFILE": str(tls.client_cert),
                "LOOKOUT_KAFKA_SSL_KEYFILE": str(tls.client_key),
                "LOOKOUT_KAFKA_SSL_KEY_PASSWORD": CLIENT_KEY_PASSWORD,
            }
        )
    return env


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory, tls_files):
    """A LocalBroker serving only TLS, requiring a client certificate signed by the test CA."""
    broker = start_broker(tmp_path_factory, tls_env(tls_files), broker_ssl_certfile=tls_files.server_cert,
                          broker_ssl_keyfile=tls_files.server_key)
    try:
        yield broker
    finally:
        broker.stop()


def test_worker_over_mutual_tls_turns_an_incident_into_an_alert(tls_broker, tls_files, tmp_path):
    worker = assert_worker_alerts_on_an_incident(tls_broker.bootstrap, tls_env(tls_files), tmp_path)
    assert CLIENT_KEY_PASSWORD not in worker.log_path.read_text(errors="replace")


@pytest.mark.parametrize("case, expected", [
    ("untrusted CA", "certificate verify failed"),
    ("no client certificate", "alert"),  # the broker's TLS alert: bad certificate / certificate required
])
def test_tls_the_broker_does_not_accept_stops_the_worker_at_once(
    tls_broker, tls_files, tmp_path, case, expected
):
    env = (
        tls_env(tls_files, ca=tls_files.other_ca)
        if case == "untrusted CA"
        else tls_env(tls_files, client_cert=False)
    )
    env.update({"LOOKOUT_BOOTSTRAP": tls_broker.bootstrap, "LOOKOUT_DATA_DIR": str(tmp_path / "w"),
                "LOOKOUT_WEB_PORT": str(free_ports(1)[0])})
    res, took = run_cli("worker", env=env)
    print(f"worker, {case}: exit {res.returncode} after {took:.2f} s: {res.stderr.strip()}")
    assert res.returncode != 0 and took < FAIL_FAST_S
    (line,) = res.stderr.strip().splitlines()
    assert line.startswith(f"Error: Kafka at {tls_broker.bootstrap} rejected the connection (SSL"), line
    assert expected in line and "Traceback" not in res.stderr
