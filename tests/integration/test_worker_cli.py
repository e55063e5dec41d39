"""``lookout worker`` as an operator sees it: a ready line, a clean log when redirected."""
import time

import pytest

pytestmark = pytest.mark.integration

READY = "ready: consuming "


def test_worker_says_ready_and_writes_a_clean_log(start_worker):
    worker = start_worker()
    deadline = time.monotonic() + 90
    log = ""
    while READY not in log and time.monotonic() < deadline:
        assert worker.proc.poll() is None, worker.log_tail()
        time.sleep(0.5)
        log = worker.log_path.read_text(errors="replace")
    ready = [ln for ln in log.splitlines() if ln.startswith(READY)]
    assert ready == [f"{READY}{worker.input_topic} from {worker.bootstrap} as group {worker.app_id}; "
                     f"metrics on http://127.0.0.1:{worker.web_port}/metrics"], log
    assert "\x1b[" not in log  # no cursor escape codes in a redirected log
    assert "GroupCoordinatorNotAvailableError" not in log and "Traceback" not in log, log


def test_a_first_start_with_a_fresh_app_id_logs_no_error(start_worker):
    """The worker creates its state topic on the first start and reads it at once: reading a
    partition before it has a leader made the clients log NotLeaderForPartition ERRORs."""
    worker = start_worker(partitions=8)  # a fresh app id: its state topic does not exist yet
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert worker.proc.poll() is None, worker.log_tail()
        try:
            if len(worker.healthz()[1].get("partitions", ())) == 8:
                break
        except OSError:
            pass
        time.sleep(0.5)
    time.sleep(2)  # the restores' reads of the new state topic are done by now
    log = worker.log_path.read_text(errors="replace")
    errors = [ln for ln in log.splitlines() if "ERROR" in ln]
    assert errors == [], "\n".join(errors)
