"""A broker outage is one line when it starts and one when it ends; rebalance warnings pass through."""
import logging

from streams.worker.outage import OutageFilter


def record(msg, name="aiokafka.consumer.group_coordinator", level=logging.WARNING):
    return logging.LogRecord(name, level, "", 0, msg, (), None)


def test_an_outage_is_two_lines_however_many_errors_the_clients_log(caplog):
    t = [0.0]
    up = [False]
    f = OutageFilter("127.0.0.1:1", clock=lambda: t[0], probe=lambda: up[0])
    passed = []
    for i in range(2000):
        t[0] = i * 0.015
        r = record("Unable connect to node with id 1: [Errno 111] Connect call failed", level=logging.ERROR)
        if f.filter(r):
            passed.append(r.getMessage())
    assert len(passed) == 1 and "is unreachable" in passed[0]
    assert f.check_recovered(reachable=False) is None  # still down
    up[0] = True
    t[0] += 1.0
    assert f.check_recovered(reachable=True) is None  # errors stopped only a moment ago
    t[0] += 5.0
    with caplog.at_level(logging.WARNING, logger="lookout.kafka"):
        line = f.check_recovered(reachable=True)
    assert line and "reachable again after an outage of 36 s (1999 client error lines suppressed)" in line
    assert [r.getMessage() for r in caplog.records] == [line]
    assert f.outages == 1


def test_warnings_while_the_broker_answers_are_not_an_outage():
    f = OutageFilter("127.0.0.1:1", probe=lambda: True)
    r = record("Heartbeat failed for group lookout because it is rebalancing")
    assert f.filter(r) and r.getMessage() == "Heartbeat failed for group lookout because it is rebalancing"
    assert f.down_since is None and f.outages == 0


def test_other_loggers_and_info_records_pass_untouched():
    f = OutageFilter("127.0.0.1:1", probe=lambda: False)
    assert f.filter(record("connection refused somewhere", name="lookout.sinks.webhook"))
    assert f.filter(record("Unable connect to node", level=logging.INFO))
    assert f.down_since is None


def test_first_errors_from_two_threads_at_once_are_still_one_line():
    """Faust's consumer thread and the event loop both log the broker going away, often within
    the same millisecond; the probe (a TCP connect) takes time, so both saw "not down yet"."""
    import threading
    import time

    def slow_probe():
        time.sleep(0.05)
        return False

    f = OutageFilter("127.0.0.1:1", probe=slow_probe)
    start = threading.Barrier(4)
    passed = []

    def log_one():
        r = record("Unable connect to node with id 1", level=logging.ERROR)
        start.wait()
        if f.filter(r):
            passed.append(r.getMessage())

    threads = [threading.Thread(target=log_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(passed) == 1 and "is unreachable" in passed[0]
    assert f.outages == 1 and f.suppressed == 3
