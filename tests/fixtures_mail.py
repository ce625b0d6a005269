"""Pytest plugin: a real Dovecot and an SMTP->LMTP relay on 127.0.0.1, started once per session."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from typing import NamedTuple

import pytest

from deploy.local.containers import MailServer, dovecot_launcher
from deploy.local.dovecot import Dovecot
from deploy.local.smtp import SmtpRelay


class MailUser(NamedTuple):
    """A mailbox created in the session's Dovecot for one test."""

    address: str
    password: str


@pytest.fixture(scope="session")
def dovecot() -> Iterator[MailServer]:
    """The session's Dovecot: IMAP on dovecot.host:dovecot.imap_port, LMTP on dovecot.lmtp_port (local, or in
    a container with MAILROOM_TEST_SERVERS=containers)."""
    with dovecot_launcher()() as server:
        yield server


@pytest.fixture(scope="session")
def smtp_relay(dovecot: Dovecot) -> Iterator[SmtpRelay]:
    """SMTP without AUTH on smtp_relay.host:smtp_relay.port, delivering into the session's Dovecot."""
    with SmtpRelay(dovecot.host, dovecot.lmtp_port) as relay:
        yield relay


@pytest.fixture
def mail_user_factory(dovecot: Dovecot) -> Callable[[str], MailUser]:
    """Creates fresh mailboxes (unique per call), so tests never read each other's letters."""

    def make(name: str = "user") -> MailUser:
        user = MailUser(f"{name}-{secrets.token_hex(4)}@mailroom.test", secrets.token_urlsafe(12))
        dovecot.add_user(user.address, user.password)
        return user

    return make
