"""streams.devtools.broker / ``lookout broker``: unit tests without Kafka, integration tests with it."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid

import pytest
from click.testing import CliRunner

import streams.devtools.broker as broker_mod
from streams.commands.broker import broker as broker_cli
from streams.devtools.broker import LocalBroker
from streams.kafka.admin import BrokerError, wait_for_kafka
from streams.settings import Settings


def make_broker(tmp_path, port=29011, cport=29012, **kw) -> LocalBroker:
    settings = Settings(broker_port=port, broker_controller_port=cport,
                        broker_data_dir=tmp_path / "data", kafka_home=tmp_path / "home", **kw)
    return LocalBroker(settings)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def listening_port():
    """A port some other (non-Kafka) process is listening on."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    yield s.getsockname()[1]
    s.close()


@pytest.fixture
def impostor():
    """A live process whose argv looks like *another* Kafka broker (not ours)."""
    procs = []

    def spawn(props_path: str) -> subprocess.Popen:
        p = subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(120)", "kafka.Kafka", props_path]
        )
        procs.append(p)
        return p

    yield spawn
    for p in procs:  # we started these, so we clean them up
        p.kill()
        p.wait()


# ----------------------------------------------------------------- rendering
def test_properties_single_node_kraft_on_loopback(tmp_path):
    b = make_broker(tmp_path, port=29101, cport=29102)
    props = dict(
        line.split("=", 1)
        for line in b.render_properties().splitlines()
        if "=" in line and not line.startswith("#")
    )
    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:29102"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:29101,CONTROLLER://127.0.0.1:29102"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:29101"
    assert props["log.dirs"] == str((tmp_path / "data" / "kraft").resolve())
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["transaction.state.log.min.isr"] == "1"
    assert b.bootstrap == "127.0.0.1:29101"


def test_log4j_config_logs_info_to_data_dir(tmp_path):
    b = make_broker(tmp_path)
    cfg = b.render_log4j()
    assert f"appender.file.fileName = {b.log_file}" in cfg
    assert "rootLogger.level = INFO" in cfg
    assert b.log_file.parent == b.data_dir / "logs"


def test_pom_pins_kafka_and_log4j_versions(tmp_path):
    pom = make_broker(tmp_path, kafka_version="4.0.2").render_pom()
    assert "<artifactId>kafka_2.13</artifactId><version>4.0.2</version>" in pom
    assert "log4j-slf4j-impl" in pom and "log4j-core" in pom


def test_same_port_twice_is_rejected(tmp_path):
    with pytest.raises(BrokerError, match="must differ"):
        make_broker(tmp_path, port=29013, cport=29013)


def test_cluster_id_looks_like_kafka_uuid():
    for _ in range(50):
        cid = broker_mod._kafka_uuid()
        assert len(cid) == 22 and not cid.startswith("-")
        assert set(cid) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


# ------------------------------------------------------------ missing tools
def test_missing_mvn_is_a_clear_one_line_error(tmp_path, monkeypatch):
    real_which = broker_mod.shutil.which
    monkeypatch.setattr(
        broker_mod.shutil,
        "which",
        lambda name: None if name == "mvn" else real_which(name) or "/usr/bin/" + name,
    )
    with pytest.raises(BrokerError) as exc:
        make_broker(tmp_path).ensure_jars()
    assert "Maven ('mvn') is not on PATH" in str(exc.value)
    assert "\n" not in str(exc.value)


def test_missing_java_is_a_clear_one_line_error(tmp_path, monkeypatch):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    b = make_broker(tmp_path, port=free_port(), cport=free_port())
    for call in (b.ensure_jars, b.start):
        with pytest.raises(BrokerError, match=r"Java 17\+ \('java'\) is not on PATH"):
            call()
    assert not b.pid_file.exists()


def test_maven_failure_reports_first_error_line(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "java").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "mvn").write_text(
        "#!/bin/sh\n"
        "echo '[ERROR] Failed to execute goal: Could not resolve dependencies (network is unreachable)'\n"
        "echo '[ERROR] '\n"
        "echo '[ERROR] [Help 1] http://example.invalid'\n"
        "exit 1\n")
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    b = make_broker(tmp_path)
    with pytest.raises(BrokerError) as exc:
        b.ensure_jars()
    msg = str(exc.value)
    assert "downloading Kafka 4.0.2 jars with Maven failed" in msg
    assert "network is unreachable" in msg and "\n" not in msg
    assert not b.libs_dir.exists() and not b.jars_ready()
    assert (b.kafka_dir / "pom.xml").is_file()


def test_cached_jars_need_neither_mvn_nor_java(tmp_path, monkeypatch):
    b = make_broker(tmp_path)
    b.libs_dir.mkdir(parents=True)
    (b.libs_dir / "kafka_2.13-4.0.2.jar").write_bytes(b"")
    (b.kafka_dir / ".complete").write_text("1 jars\n")
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    assert b.ensure_jars() == b.libs_dir


# ------------------------------------------------------- never touch others
def test_stop_without_pid_file_does_nothing(tmp_path):
    assert make_broker(tmp_path).stop() is None


def test_stop_refuses_a_pid_it_did_not_start(tmp_path, impostor):
    b = make_broker(tmp_path)
    b.data_dir.mkdir(parents=True)
    other = impostor("/somewhere/else/server.properties")  # "another broker"
    b.pid_file.write_text(json.dumps({"pid": other.pid, "port": b.port}))
    assert b.status().running is False
    assert "stale pid file" in b.status().note
    assert b.stop(timeout=1) is None
    time.sleep(0.2)
    assert other.poll() is None, "stop() signalled a process it did not start"
    assert not b.pid_file.exists(), "a stale pid file is cleaned up"


def test_stop_refuses_own_pid_file_pointing_at_unrelated_process(tmp_path):
    b = make_broker(tmp_path)
    b.data_dir.mkdir(parents=True)
    b.pid_file.write_text(json.dumps({"pid": os.getpid()}))  # this very test process
    assert b.stop(timeout=1) is None  # and we are still alive to assert it
    b.pid_file.write_text("garbage")
    assert b.stop(timeout=1) is None


def test_stop_escalates_to_sigkill_for_its_own_broker(tmp_path):
    """A process that *is* ours (kafka.Kafka + our server.properties) but ignores SIGTERM."""
    b = make_broker(tmp_path)
    b.data_dir.mkdir(parents=True)
    code = ("import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('ready', flush=True); time.sleep(120)")
    p = subprocess.Popen(
        [sys.executable, "-c", code, "kafka.Kafka", str(b.properties_file)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert p.stdout.readline().strip() == "ready"
        b.pid_file.write_text(
            json.dumps({"pid": p.pid, "port": b.port, "controller_port": b.controller_port})
        )
        assert b.status().running and b.status().pid == p.pid
        t0 = time.monotonic()
        assert b.stop(timeout=1) == p.pid
        p.wait(timeout=10)  # gone (stop() reaped it, so the exit status is not available here)
        assert 1 <= time.monotonic() - t0 < 8  # waited the SIGTERM timeout, then SIGKILL
        assert not b.pid_file.exists() and not b.status().running
    finally:
        p.kill()
        p.wait()


def test_start_refuses_a_port_taken_by_something_else(tmp_path, listening_port):
    b = make_broker(tmp_path, port=listening_port, cport=free_port())
    with pytest.raises(
        BrokerError, match=f"broker port {listening_port} is already in use by another process"
    ):
        b.start(timeout=5)
    assert not b.pid_file.exists()
    assert "in use by another process" in b.status().note


def test_start_refuses_a_taken_controller_port(tmp_path, listening_port):
    b = make_broker(tmp_path, port=free_port(), cport=listening_port)
    with pytest.raises(BrokerError, match=f"controller port {listening_port} is already in use"):
        b.start(timeout=5)


def test_refuses_a_data_dir_it_did_not_create(tmp_path):
    b = make_broker(tmp_path)
    b.data_dir.mkdir(parents=True)
    (b.data_dir / "precious.txt").write_text("keep me")
    for fresh in (True, False):
        with pytest.raises(BrokerError, match="refusing to use"):
            b.start(timeout=5, fresh=fresh)
    assert (b.data_dir / "precious.txt").read_text() == "keep me"


def test_fresh_wipes_its_own_data_dir(tmp_path, listening_port):
    b = make_broker(tmp_path, port=listening_port, cport=free_port())
    with pytest.raises(BrokerError, match="already in use"):
        b.start(timeout=5)  # claims the (new) data dir, then fails on the port
    (b.data_dir / "kraft").mkdir()
    (b.data_dir / "kraft" / "meta.properties").write_text("old")
    with pytest.raises(BrokerError, match="already in use"):
        b.start(timeout=5, fresh=True)
    assert [p.name for p in b.data_dir.iterdir()] == [broker_mod.MARKER]


# ------------------------------------------------------------------- CLI
@pytest.mark.parametrize("sub", [[], ["start"], ["stop"], ["status"], ["fetch"]])
def test_cli_help_has_examples(sub):
    res = CliRunner().invoke(broker_cli, [*sub, "--help"])
    assert res.exit_code == 0, res.output
    assert "Example" in res.output and "lookout broker" in res.output


def test_cli_error_is_one_line_without_traceback(tmp_path, listening_port):
    res = CliRunner().invoke(broker_cli, ["start", "--broker-port", str(listening_port), "--controller-port",
                                          str(free_port()), "--data-dir", str(tmp_path / "d")])
    assert res.exit_code == 1
    assert res.stderr.strip().count("\n") == 0, res.stderr
    assert "already in use" in res.stderr and "Traceback" not in res.stderr


def test_cli_status_and_stop_when_not_running(tmp_path):
    runner = CliRunner()
    res = runner.invoke(
        broker_cli, ["status", "--data-dir", str(tmp_path / "d"), "--broker-port", str(free_port()), "--json"]
    )
    assert res.exit_code == 3
    assert json.loads(res.stdout)["running"] is False
    res = runner.invoke(broker_cli, ["stop", "--data-dir", str(tmp_path / "d")])
    assert res.exit_code == 0 and "no broker running" in res.stdout


# ----------------------------------------------------------- integration
@pytest.mark.integration
def test_produce_and_consume_through_the_broker(kafka_bootstrap, kafka_topics):
    from kafka import KafkaConsumer, KafkaProducer

    topic = kafka_topics("roundtrip", partitions=2)
    payload = {"customer": "c1", "id": uuid.uuid4().hex}
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    try:
        producer.send(topic, json.dumps(payload).encode(), key=b"c1").get(timeout=30)
    finally:
        producer.close()
    consumer = KafkaConsumer(topic, bootstrap_servers=kafka_bootstrap, group_id=f"g-{uuid.uuid4().hex[:8]}",
                             auto_offset_reset="earliest", consumer_timeout_ms=1000)
    try:
        got, deadline = [], time.monotonic() + 60
        while not got and time.monotonic() < deadline:
            got = [json.loads(m.value) for m in consumer]
    finally:
        consumer.close()
    assert got == [payload]


@pytest.mark.integration
def test_status_reports_the_session_broker_running(kafka_broker):
    if kafka_broker is None:
        pytest.skip("external broker (LOOKOUT_TEST_BOOTSTRAP)")
    st = kafka_broker.status()
    assert st.running and st.pid and st.pid > 0
    assert st.port == kafka_broker.port and st.bootstrap == kafka_broker.bootstrap
    assert st.data_dir == kafka_broker.data_dir and st.version == "4.0.2"
    assert "Kafka Server started" in kafka_broker.log_file.read_text()
    # starting again is a no-op, not a second broker
    assert kafka_broker.start(timeout=10).pid == st.pid


@pytest.mark.integration
def test_other_data_dir_cannot_stop_or_duplicate_the_session_broker(kafka_broker, tmp_path):
    if kafka_broker is None:
        pytest.skip("external broker (LOOKOUT_TEST_BOOTSTRAP)")
    pid = kafka_broker.status().pid
    other = LocalBroker(kafka_broker.settings.replace(broker_data_dir=tmp_path / "other"))
    assert other.stop(timeout=2) is None
    # even a pid file that names the session broker's pid is not enough
    other.data_dir.mkdir(parents=True)
    other.pid_file.write_text(json.dumps({"pid": pid, "port": other.port}))
    assert other.status().running is False
    assert other.stop(timeout=2) is None
    # and it refuses to start a second broker on the same port
    with pytest.raises(BrokerError, match="already in use"):
        other.start(timeout=10)
    st = kafka_broker.status()
    assert st.running and st.pid == pid
    wait_for_kafka(kafka_broker.bootstrap, timeout=10)


@pytest.mark.integration
def test_a_broker_that_dies_on_startup_is_reported_with_its_log(tmp_path):
    settings = Settings.from_env(broker_port=free_port(), broker_controller_port=free_port(),
                                 broker_data_dir=tmp_path / "dies")
    b = LocalBroker(settings)
    b.ensure_jars()
    # formatted storage that belongs to another node id: Kafka exits right away
    b.log_dirs.mkdir(parents=True)
    (b.data_dir / broker_mod.MARKER).write_text("")
    (b.log_dirs / "meta.properties").write_text(
        "version=1\ncluster.id=AAAAAAAAAAAAAAAAAAAAAA\nnode.id=7\ndirectory.id=AAAAAAAAAAAAAAAAAAAAAA\n")
    with pytest.raises(BrokerError) as exc:
        b.start(timeout=60)
    assert "exited with code" in str(exc.value) and "node id" in str(exc.value)
    assert "\n" not in str(exc.value) and "last lines of" in exc.value.detail
    assert not b.pid_file.exists() and not b.status().running
