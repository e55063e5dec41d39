"""streams.kafka.admin: the admin helpers against the session's real broker."""
from __future__ import annotations

import uuid

import pytest

from streams.kafka.admin import create_topics


@pytest.mark.integration
def test_create_topics_is_idempotent(kafka_bootstrap):
    name = f"idem-{uuid.uuid4().hex[:8]}"
    assert create_topics(kafka_bootstrap, {name: 3}) == [name]
    assert create_topics(kafka_bootstrap, {name: 3}) == []
    assert create_topics(kafka_bootstrap, {name: 1, name + "-b": 1}) == [name + "-b"]
