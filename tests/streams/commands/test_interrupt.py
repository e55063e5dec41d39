"""Ctrl-C stops a following command however busy its Kafka client is (streams.commands._common)."""
from __future__ import annotations

import os
import signal

import pytest

from streams.commands._common import stop_on_interrupt


def _swallowing_client_step() -> None:
    """What kafka-python 3's network loop does with an exception raised while one of its tasks
    runs: logs it and goes on. A Ctrl-C that arrives there must still stop the command."""
    try:
        os.kill(os.getpid(), signal.SIGINT)  # delivered to this (the main) thread, here
    except BaseException:  # noqa: BLE001 -- the client's catch-all
        pass


def test_a_ctrl_c_that_lands_inside_a_catch_all_still_stops_the_follow_loop():
    before = signal.getsignal(signal.SIGINT)
    polls = 0
    with stop_on_interrupt() as stop:
        while not stop.is_set():  # the tail's loop: one client step per poll
            polls += 1
            _swallowing_client_step()
            assert polls < 5, "Ctrl-C was lost: the loop would follow for ever"
        # a second Ctrl-C is the usual KeyboardInterrupt (for a command stuck elsewhere)
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert polls == 1 and signal.getsignal(signal.SIGINT) is before
