"""The commit cap and the book's positions across a hand-over (issue 20: the hand-over stall)."""
from __future__ import annotations

from collections import defaultdict

from faust.types import TP

from streams.state.book import PartitionBook
from streams.state.commit_cap import cap_input_commits


class _Consumer:
    """What cap_input_commits uses of Faust's consumer."""

    def __init__(self, assigned):
        self.assigned = set(assigned)
        self._acked, self._acked_index = defaultdict(list), defaultdict(set)

    def _new_offset(self, tp):  # Faust's: the highest contiguous acknowledged offset
        return max(self._acked[tp], default=None)

    def assignment(self):
        return set(self.assigned)


def test_the_input_is_committed_at_the_marker_and_other_topics_as_faust_acknowledges():
    book = PartitionBook()
    book.assign(0, committable=120)
    consumer = _Consumer({TP("in", 0), TP("alerts", 0)})
    consumer._acked[TP("in", 0)] = [500]
    consumer._acked[TP("alerts", 0)] = [7]
    cap_input_commits(consumer, "in", book)
    assert consumer._new_offset(TP("in", 0)) == 120
    assert consumer._new_offset(TP("alerts", 0)) == 7


def test_a_revoked_partition_is_not_committed_even_if_an_event_of_it_is_acknowledged_late():
    # the worker keeps a revoked partition's book (its models may come back); an event of it
    # acknowledged after the revocation put it back in Faust's acks, and its marker was
    # committed over the new owner's position: that owner's consumer jumped past its book
    # and /healthz said "nothing processed for 180 s with 751 messages waiting" for ever
    book = PartitionBook()
    book.assign(0, committable=6912)
    consumer = _Consumer(set())  # partition 0 went to another worker
    consumer._acked[TP("in", 0)] = [6000]
    cap_input_commits(consumer, "in", book)
    assert consumer._new_offset(TP("in", 0)) is None


def test_a_restored_partition_starts_at_its_marker_whatever_older_offset_the_consumer_resumes_at():
    book = PartitionBook()
    book.assign(0, committable=6912, rerun_until=6912)
    assert book.lag(0, highwater=6912) == 0  # the state reflects every event below the marker
    book.processed_many([(0, off, "c") for off in range(751, 6161)])  # the re-read of older events
    assert book.lag(0, highwater=6912) == 0
    assert book.begin_snapshot([0]) == {}  # no marker that goes back to 6161
    book.processed(0, 6912, "c")
    book.mark_dirty(["c"])
    assert book.begin_snapshot([0])[0].input_offset == 6913
