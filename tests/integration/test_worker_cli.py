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
