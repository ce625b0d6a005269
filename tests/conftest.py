"""Session-wide servers: Kafka (KAFKA_BOOTSTRAP_SERVERS, or a broker from the Maven jars), Dovecot, SMTP."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from deploy.local.kafka import KafkaBroker

pytest_plugins = ["tests.fixtures_mail"]


@pytest.fixture(scope="session")
def kafka_servers() -> Iterator[str]:
    """A broker's bootstrap address: the one named by KAFKA_BOOTSTRAP_SERVERS as it is, else our own."""
    given = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if given:
        yield given
        return
    with KafkaBroker() as broker:
        yield broker.bootstrap_servers
