"""Integration: XOAUTH2 logins into a real Dovecot (oauth2 passdb asking a local OAuth2 provider) and a
real SMTP server, with tokens from each kind of source (runtime/oauth2.py)."""

from __future__ import annotations

import json
import secrets
import shlex
import stat
import sys
import time
from collections.abc import Iterator
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import pytest
from imapclient import IMAPClient

from deploy.local.dovecot import Dovecot
from deploy.local.mailbox import append_message, wait_for_messages
from deploy.local.oauth import OAuthProvider
from deploy.local.ports import free_port
from deploy.local.smtp import SmtpRelay
from responder.errors import SmtpError
from responder.smtp import SmtpSender
from runtime import oauth2
from runtime.imap import close_imap, open_imap
from schemas.config import ImapSettings, SmtpSettings
from schemas.errors import ImapConnectError

pytestmark = pytest.mark.integration

REVOKED = "invalid_grant: Token has been expired or revoked."


@pytest.fixture(scope="module")
def provider() -> Iterator[OAuthProvider]:
    with OAuthProvider() as p:
        yield p


@pytest.fixture(scope="module")
def dovecot(provider: OAuthProvider) -> Iterator[Dovecot]:
    """A Dovecot of this module's own: it takes XOAUTH2 tokens the provider vouches for, and passwords."""
    with Dovecot(oauth2_introspection_url=provider.introspection_url) as server:
        yield server


@pytest.fixture(autouse=True)
def token_store(tmp_path: Path) -> Iterator[Path]:
    """Each test starts as a fresh process with its own data folder."""
    store = tmp_path / "oauth2"
    oauth2.use_store_dir(store)
    oauth2.reset()
    yield store
    oauth2.reset()
    oauth2.use_store_dir(None)


@pytest.fixture
def user(dovecot: Dovecot) -> tuple[str, str]:
    address, password = f"desk-{secrets.token_hex(4)}@mailroom.test", secrets.token_urlsafe(12)
    dovecot.add_user(address, password)
    return address, password


def _imap(dovecot: Dovecot, username: str, **source: Any) -> ImapSettings:
    return ImapSettings.model_validate(
        {
            "host": dovecot.host,
            "port": dovecot.imap_port,
            "security": "none",
            "username": username,
            "auth": "xoauth2",
            "oauth2": source,
        }
    )


def _endpoint(provider: OAuthProvider, refresh_token: Any, **more: Any) -> dict[str, Any]:
    return {
        "token_endpoint": provider.token_endpoint,
        "client_id": provider.client_id,
        "client_secret": provider.client_secret,
        "refresh_token": refresh_token,
        "scope": "https://mail.google.com/",
        **more,
    }


def _inbox_count(settings: ImapSettings) -> int:
    client = open_imap(settings, timeout=10)
    try:
        exists: int = client.select_folder("INBOX", readonly=True)[b"EXISTS"]
        return exists
    finally:
        close_imap(client)


def _refused(settings: ImapSettings) -> ImapConnectError:
    with pytest.raises(ImapConnectError) as caught:
        close_imap(open_imap(settings, timeout=10))
    return caught.value


def test_a_token_endpoint_source_logs_in_and_reads_the_mailbox_a_password_user_sees(
    dovecot: Dovecot, provider: OAuthProvider, user: tuple[str, str]
) -> None:
    address, password = user
    append_message(dovecot.host, dovecot.imap_port, address, password, b"Subject: hi\r\n\r\nHello\r\n")
    settings = _imap(dovecot, address, **_endpoint(provider, provider.issue_refresh_token(address)))

    assert _inbox_count(settings) == 1
    assert _inbox_count(settings) == 1  # the cached access token is used again
    assert provider.refresh_count(address) == 1
    request = provider.requests[-1]
    assert request["grant_type"] == "refresh_token"
    assert request["client_id"] == provider.client_id
    assert request["scope"] == "https://mail.google.com/"
    # Password logins keep working beside the oauth2 passdb.
    with IMAPClient(dovecot.host, port=dovecot.imap_port, ssl=False) as client:
        client.login(address, password)


def test_the_newest_refresh_token_is_kept_on_disk_so_a_restart_still_logs_in(
    dovecot: Dovecot, provider: OAuthProvider, user: tuple[str, str], token_store: Path
) -> None:
    address, _ = user
    first = provider.issue_refresh_token(address)
    settings = _imap(dovecot, address, **_endpoint(provider, first))

    assert _inbox_count(settings) == 0
    (newest,) = provider.valid_refresh_tokens(address)
    assert newest != first  # the provider rotated it: the configured one is spent
    (kept,) = token_store.glob("*.json")
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert json.loads(kept.read_text())["refresh_token"] == newest

    oauth2.reset()  # a restart: the access token is gone, the configured refresh token is the spent one
    assert _inbox_count(settings) == 0
    assert provider.refresh_count(address) == 2
    assert provider.requests[-1]["refresh_token"] == newest
    assert first not in provider.valid_refresh_tokens(address)


def test_a_refresh_token_configured_anew_wins_over_the_kept_one(
    dovecot: Dovecot, provider: OAuthProvider, user: tuple[str, str]
) -> None:
    address, _ = user
    first = _imap(dovecot, address, **_endpoint(provider, provider.issue_refresh_token(address)))
    assert _inbox_count(first) == 0  # the rotated refresh token is now kept on disk
    provider.revoke_user(address)  # the account signed out everywhere; an administrator signs in again
    fresh = provider.issue_refresh_token(address)

    oauth2.reset()
    assert _inbox_count(_imap(dovecot, address, **_endpoint(provider, fresh))) == 0
    assert provider.requests[-1]["refresh_token"] == fresh


def test_a_revoked_refresh_token_fails_at_once_for_good_with_the_providers_reason(
    dovecot: Dovecot, provider: OAuthProvider, user: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    address, _ = user
    refresh_token = provider.issue_refresh_token(address)
    provider.revoke(refresh_token)
    monkeypatch.setenv("MAILROOM_TEST_REVOKED_RT", refresh_token)
    settings = _imap(dovecot, address, **_endpoint(provider, {"env": "MAILROOM_TEST_REVOKED_RT"}))
    started = time.monotonic()
    error = _refused(settings)

    assert time.monotonic() - started < 5
    assert error.retriable is False
    text = str(error)
    assert REVOKED in text
    assert (
        "sign in again and store a new refresh token in the environment variable MAILROOM_TEST_REVOKED_RT"
        in text
    )
    assert refresh_token not in text


def test_a_provider_that_is_down_or_unreachable_is_retriable(
    dovecot: Dovecot, provider: OAuthProvider, user: tuple[str, str]
) -> None:
    address, _ = user
    settings = _imap(dovecot, address, **_endpoint(provider, provider.issue_refresh_token(address)))
    provider.fail_next(503, {"error": "temporarily_unavailable"})
    error = _refused(settings)
    assert error.retriable is True
    assert "HTTP 503" in str(error)
    assert _inbox_count(settings) == 0  # the refresh token was not spent by the failed try

    unreachable = _endpoint(provider, "rt-x", token_endpoint=f"http://127.0.0.1:{free_port()}/token")
    oauth2.reset()
    error = _refused(_imap(dovecot, address, **unreachable))
    assert error.retriable is True
    assert "cannot reach the token endpoint" in str(error)


def test_a_wrong_or_expired_access_token_is_refused_with_advice(
    dovecot: Dovecot, provider: OAuthProvider, user: tuple[str, str]
) -> None:
    address, _ = user
    for token in ("at-" + secrets.token_urlsafe(24), provider.issue_access_token(address, expires_in=-1)):
        error = _refused(_imap(dovecot, address, token=token))
        assert error.retriable is False
        assert "login refused" in str(error)
        assert "the server refused the OAuth2 token" in f"{error} {error.advice}"
        assert token not in str(error)


def test_a_cached_access_token_the_server_refuses_is_replaced_on_the_next_try(
    dovecot: Dovecot, provider: OAuthProvider, user: tuple[str, str]
) -> None:
    address, _ = user
    settings = _imap(dovecot, address, **_endpoint(provider, provider.issue_refresh_token(address)))
    assert _inbox_count(settings) == 0
    provider.expire_access_tokens(address)  # revoked early by the provider

    assert _refused(settings).retriable is False
    assert _inbox_count(settings) == 0
    assert provider.refresh_count(address) == 2


def test_a_refresh_command_printing_json_is_a_source(
    dovecot: Dovecot, provider: OAuthProvider, user: tuple[str, str]
) -> None:
    address, _ = user
    answer = json.dumps({"access_token": provider.issue_access_token(address), "expires_in": 1800})
    command = shlex.join([sys.executable, "-c", f"print({answer!r})"])

    assert _inbox_count(_imap(dovecot, address, refresh_command=command)) == 0

    failing = shlex.join([sys.executable, "-c", "import sys; sys.exit('consent revoked')"])
    oauth2.reset()
    error = _refused(_imap(dovecot, address, refresh_command=failing))
    assert error.retriable is False
    assert "exited with code 1: consent revoked" in str(error)


def test_a_static_token_from_the_environment_is_a_source(
    dovecot: Dovecot, provider: OAuthProvider, user: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    address, _ = user
    monkeypatch.setenv("MAILROOM_TEST_ACCESS_TOKEN", provider.issue_access_token(address))
    assert _inbox_count(_imap(dovecot, address, token={"env": "MAILROOM_TEST_ACCESS_TOKEN"})) == 0


def _letter(sender: str, to: str) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, "Sent with XOAUTH2"
    msg["Message-ID"] = make_msgid(domain="mailroom.test")
    msg.set_content("Hello over XOAUTH2.")
    return msg.as_bytes().replace(b"\n", b"\r\n")


def test_the_responder_sends_over_smtp_with_xoauth2_sharing_imaps_rotating_token(
    dovecot: Dovecot, provider: OAuthProvider, user: tuple[str, str]
) -> None:
    address, password = user
    source = _endpoint(provider, provider.issue_refresh_token(address))
    with SmtpRelay(dovecot.host, dovecot.lmtp_port, oauth2_check=provider.check_access_token) as relay:
        smtp = SmtpSettings.model_validate(
            {
                "host": relay.host,
                "port": relay.port,
                "security": "none",
                "username": address,
                "oauth2": source,
            }
        )
        sender = SmtpSender(smtp)
        try:
            accepted = sender.send(_letter(address, address), address, [address])
        finally:
            sender.close()
        assert accepted.code == 250
        assert _inbox_count(_imap(dovecot, address, **source)) == 1  # the same token, no second refresh
        assert provider.refresh_count(address) == 1
        wait_for_messages(dovecot.host, dovecot.imap_port, address, password, count=1)

        provider.expire_access_tokens(address)
        refused = SmtpSender(smtp)
        with pytest.raises(SmtpError) as caught:
            refused.send(_letter(address, address), address, [address])
        refused.close()
        assert caught.value.retriable is False
        assert caught.value.code == 535

        again = SmtpSender(smtp)  # the refused token was dropped: the next connection gets a new one
        try:
            assert again.send(_letter(address, address), address, [address]).code == 250
        finally:
            again.close()
        assert provider.refresh_count(address) == 2


def test_a_revoked_refresh_token_fails_an_smtp_send_for_good(
    dovecot: Dovecot, provider: OAuthProvider, user: tuple[str, str]
) -> None:
    address, _ = user
    refresh_token = provider.issue_refresh_token(address)
    provider.revoke(refresh_token)
    with SmtpRelay(dovecot.host, dovecot.lmtp_port, oauth2_check=provider.check_access_token) as relay:
        smtp = SmtpSettings.model_validate(
            {
                "host": relay.host,
                "port": relay.port,
                "security": "none",
                "username": address,
                "oauth2": _endpoint(provider, refresh_token),
            }
        )
        sender = SmtpSender(smtp)
        with pytest.raises(SmtpError) as caught:
            sender.send(_letter(address, address), address, [address])
        sender.close()
    assert caught.value.retriable is False
    assert REVOKED in str(caught.value)
