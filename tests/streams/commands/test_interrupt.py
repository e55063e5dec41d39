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
        # anywhere else, Ctrl-C is the usual KeyboardInterrupt (a command blocked elsewhere stops)
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert polls == 1 and signal.getsignal(signal.SIGINT) is before


def test_the_demo_stops_on_a_ctrl_c_the_kafka_client_swallowed(tmp_path):
    """The demo's watch loop reads alerts with kafka-python too: a Ctrl-C swallowed there left it
    running until its 15-minute limit. The event stops it, and run() then stops what it started."""
    import io
    import threading

    from streams.devtools.demo import Demo, DemoOptions, DemoResult
    from streams.settings import Settings

    stop = threading.Event()

    class Consumer:  # polls like kafka-python; the interrupt arrived and was swallowed inside
        polls = 0

        def __iter__(self):
            self.polls += 1
            assert self.polls < 3, "the demo went on watching after Ctrl-C"
            stop.set()
            return iter(())

    demo = Demo(Settings(data_dir=tmp_path / "w"), DemoOptions(web_port=1), out=io.StringIO(), stop=stop)
    with pytest.raises(KeyboardInterrupt):
        demo._watch(Consumer(), DemoResult(produced=10), threading.Event(), [], demo.clock())
