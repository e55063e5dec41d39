"""``create_lookout_topics`` (what ``lookout topics create`` runs) on the real broker, without click."""
import uuid

import pytest
from kafka import KafkaConsumer

from streams.kafka.admin import create_lookout_topics
from streams.settings import Settings

pytestmark = pytest.mark.integration


def test_creates_every_topic_once_and_leaves_existing_ones_alone(kafka_bootstrap):
    run = uuid.uuid4().hex[:8]
    s = Settings.from_env({}, bootstrap=kafka_bootstrap, partitions=3, input_topic=f"in-{run}",
                          alerts_topic=f"alerts-{run}", dlq_topic=f"dlq-{run}",
                          sink_dlq_topic=f"sink-dlq-{run}", customers_topic=f"customers-{run}",
                          incidents_topic=f"incidents-{run}", routed_topic=f"routed-{run}",
                          feedback_topic=f"feedback-{run}", silences_topic=f"silences-{run}")
    expected = {f"in-{run}": 3, f"alerts-{run}": 3, f"dlq-{run}": 1, f"sink-dlq-{run}": 1,
                f"customers-{run}": 3, f"incidents-{run}": 3, f"routed-{run}": 3,
                f"feedback-{run}": 1, f"silences-{run}": 1}
    assert create_lookout_topics(s) == {name: (parts, True) for name, parts in expected.items()}
    assert create_lookout_topics(s) == {name: (parts, False) for name, parts in expected.items()}
    c = KafkaConsumer(bootstrap_servers=kafka_bootstrap)
    try:
        assert {name: len(c.partitions_for_topic(name) or ()) for name in expected} == expected
    finally:
        c.close()
