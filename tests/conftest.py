"""Session-wide servers: Kafka (KAFKA_BOOTSTRAP_SERVERS, or a broker from the Maven jars, or a container
with MAILROOM_TEST_SERVERS=containers), Dovecot, SMTP."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from deploy.local.containers import kafka_launcher

pytest_plugins = ["tests.fixtures_mail"]


@pytest.fixture(scope="session")
def kafka_servers() -> Iterator[str]:
    """A broker's bootstrap address: the one named by KAFKA_BOOTSTRAP_SERVERS as it is, else our own
    (local, or in a container with MAILROOM_TEST_SERVERS=containers)."""
    given = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if given:
        yield given
        return
    with kafka_launcher()() as broker:
        yield broker.bootstrap_servers
