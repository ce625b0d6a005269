"""Which servers the test fixtures start: the local launchers by default; containers only where asked for,
and then a clear error naming MAILROOM_TEST_SERVERS when no Docker engine answers."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy.local.containers import (
    ContainersUnavailableError,
    DovecotContainer,
    KafkaContainerBroker,
    _dovecot_config,
    chosen_servers,
    dovecot_launcher,
    kafka_launcher,
)
from deploy.local.dovecot import Dovecot, DovecotError
from deploy.local.kafka import KafkaBroker, KafkaStartError
from deploy.local.ports import free_port


@pytest.mark.parametrize("environ", [{}, {"MAILROOM_TEST_SERVERS": ""}, {"MAILROOM_TEST_SERVERS": "local"}])
def test_the_local_launchers_are_the_default(environ: dict[str, str]) -> None:
    assert chosen_servers(environ) == "local"
    assert kafka_launcher(environ) is KafkaBroker
    assert dovecot_launcher(environ) is Dovecot


def test_an_unknown_choice_is_refused_by_name() -> None:
    with pytest.raises(
        ContainersUnavailableError, match=r"MAILROOM_TEST_SERVERS='docker' is neither 'local'"
    ):
        kafka_launcher({"MAILROOM_TEST_SERVERS": "docker"})


def test_containers_without_an_engine_socket_say_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    socket = tmp_path / "docker.sock"
    monkeypatch.setenv("DOCKER_HOST", f"unix://{socket}")
    environ = {"MAILROOM_TEST_SERVERS": "containers"}
    for launcher in (kafka_launcher, dovecot_launcher):
        with pytest.raises(ContainersUnavailableError) as raised:
            launcher(environ)
        message = str(raised.value)
        assert message.startswith("MAILROOM_TEST_SERVERS=containers needs a Docker engine")
        assert f"no socket at {socket}" in message
        assert "unset MAILROOM_TEST_SERVERS" in message


def test_containers_with_an_engine_address_nobody_answers_at(monkeypatch: pytest.MonkeyPatch) -> None:
    address = f"tcp://127.0.0.1:{free_port()}"
    monkeypatch.setenv("DOCKER_HOST", address)
    with pytest.raises(
        ContainersUnavailableError, match=r"^MAILROOM_TEST_SERVERS=containers needs"
    ) as raised:
        kafka_launcher({"MAILROOM_TEST_SERVERS": "Containers"})
    assert address in str(raised.value)


def test_unstarted_containers_say_so() -> None:
    with pytest.raises(KafkaStartError, match="not started"):
        _ = KafkaContainerBroker().bootstrap_servers
    with pytest.raises(DovecotError, match="not started"):
        DovecotContainer().add_user("someone@mailroom.test", "secret")
    # Refused before any container is asked, as the local launcher refuses them.
    with pytest.raises(ValueError, match="unusable mailbox address"):
        DovecotContainer().add_user("a:b@mailroom.test", "secret")


def test_the_dovecot_container_is_configured_as_the_local_one_on_every_address() -> None:
    config = _dovecot_config()
    assert "127.0.0.1" not in config
    assert "listen = *\n" in config
    assert "    address = *\n    port = 143\n" in config
    assert "    address = *\n    port = 24\n" in config
    assert (
        "passdb {\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%u /srv/mailroom/users/%u"
        in config
    )
    assert "ssl = no" in config
