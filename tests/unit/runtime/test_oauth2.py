"""runtime/oauth2.py and runtime/refresh_tokens.py: command output, the kept refresh token against the
configured one, caching and expiry, and how refusals read."""

from __future__ import annotations

import json
import shlex
import stat
import sys
import threading
from pathlib import Path

import pytest
from pydantic import SecretStr

from runtime.oauth2 import (
    AccessToken,
    OAuth2Error,
    TokenCache,
    _refused,
    parse_command_output,
    xoauth2_string,
)
from runtime.refresh_tokens import RefreshTokenStore
from schemas.config import EnvSecret, FileSecret, OAuth2Settings

# A refresh command that counts its runs in a file and prints `tok-<run>` with the given lifetime.
_COUNTING = """\
import json, pathlib, sys
counter = pathlib.Path(sys.argv[1])
runs = int(counter.read_text()) + 1 if counter.exists() else 1
counter.write_text(str(runs))
print(json.dumps({"access_token": f"tok-{runs}", "expires_in": int(sys.argv[2])}))
"""


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _counting(tmp_path: Path, expires_in: int = 3600) -> tuple[OAuth2Settings, Path]:
    script, counter = tmp_path / "token.py", tmp_path / "runs"
    script.write_text(_COUNTING)
    command = shlex.join([sys.executable, str(script), str(counter), str(expires_in)])
    return OAuth2Settings(refresh_command=command), counter


def _runs(counter: Path) -> int:
    return int(counter.read_text()) if counter.exists() else 0


# The output of a refresh command.


@pytest.mark.parametrize(
    ("output", "token", "expires_in"),
    [
        ("ya29.abc\n", "ya29.abc", 3600.0),
        ("  ya29.abc  \r\n", "ya29.abc", 3600.0),
        ('{"access_token": "ya29.abc", "expires_in": 1799}\n', "ya29.abc", 1799.0),
        ('{"access_token": "ya29.abc", "expires_in": "600", "token_type": "Bearer"}', "ya29.abc", 600.0),
        ('{"access_token": "ya29.abc"}', "ya29.abc", 3600.0),
    ],
)
def test_a_command_prints_the_token_alone_or_json(output: str, token: str, expires_in: float) -> None:
    got = parse_command_output(output)
    assert (got.value, got.expires_in) == (token, expires_in)


@pytest.mark.parametrize(
    "output",
    [
        "",
        "\n\n",
        "Your token is secret-token-123",
        "secret-token-123\nsecond line",
        '{"access_token": "secret-token-123"',
        '{"token": "secret-token-123"}',
        '{"access_token": "secret-token-123", "expires_in": "soon"}',
        '["secret-token-123"]',
        '{"access_token": "secret-token-123\\u0001user=other"}',
    ],
)
def test_unusable_command_output_is_refused_without_quoting_it(output: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_command_output(output)
    assert "secret-token-123" not in str(caught.value)


def test_an_access_token_never_shows_in_its_repr() -> None:
    assert "abc" not in repr(AccessToken("abc", 60, "rt-abc"))


def test_the_xoauth2_initial_response() -> None:
    assert xoauth2_string("a@x.test", "tok") == "user=a@x.test\x01auth=Bearer tok\x01\x01"


# The kept refresh token against the configured one.


def test_without_a_kept_token_the_configured_one_is_used(tmp_path: Path) -> None:
    store = RefreshTokenStore(tmp_path / "oauth2")
    assert store.choose(store.path("https://e", "c", "u"), "rt-configured") == "rt-configured"


def test_the_newest_kept_token_is_used_while_the_configured_one_is_unchanged(tmp_path: Path) -> None:
    store = RefreshTokenStore(tmp_path / "oauth2")
    path = store.path("https://e", "c", "u")
    store.keep(path, "rt-configured", "rt-2", {"username": "u"})
    store.keep(path, "rt-configured", "rt-3", {"username": "u"})

    assert store.choose(path, "rt-configured") == "rt-3"
    assert store.choose(path, "rt-signed-in-again") == "rt-signed-in-again"  # an administrator's new one wins
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.directory.stat().st_mode) == 0o700
    assert sorted(p.name for p in store.directory.iterdir()) == [path.name]  # no temporary file left
    record = json.loads(path.read_text())
    assert "rt-configured" not in json.dumps(record)  # only its hash


def test_a_kept_token_after_a_new_configured_one_is_kept_against_the_new_one(tmp_path: Path) -> None:
    store = RefreshTokenStore(tmp_path)
    path = store.path("https://e", "c", "u")
    store.keep(path, "rt-old", "rt-old-2", {})
    store.keep(path, "rt-new", "rt-new-2", {})
    assert store.choose(path, "rt-new") == "rt-new-2"
    assert store.choose(path, "rt-old") == "rt-old"


def test_an_unreadable_kept_file_falls_back_to_the_configured_token(tmp_path: Path) -> None:
    store = RefreshTokenStore(tmp_path)
    path = store.path("https://e", "c", "u")
    path.write_text("{not json")
    assert store.choose(path, "rt-configured") == "rt-configured"


def test_each_endpoint_client_and_account_has_its_own_file(tmp_path: Path) -> None:
    store = RefreshTokenStore(tmp_path)
    paths = {
        store.path("https://e", "c", "u"),
        store.path("https://e2", "c", "u"),
        store.path("https://e", "c2", "u"),
        store.path("https://e", "c", "u2"),
    }
    assert len(paths) == 4
    assert store.path("https://e", "c", "u") == store.path("https://e", "c", "u")


# Caching and expiry.


def test_a_token_is_reused_until_five_minutes_before_it_expires(tmp_path: Path) -> None:
    settings, counter = _counting(tmp_path, expires_in=3600)
    clock = Clock()
    cache = TokenCache(tmp_path / "store", clock=clock)

    assert cache.access_token(settings, "a@x.test", "imap.oauth2") == "tok-1"
    clock.now += 3600 - 300 - 1
    assert cache.access_token(settings, "a@x.test", "imap.oauth2") == "tok-1"
    clock.now += 1
    assert cache.access_token(settings, "a@x.test", "imap.oauth2") == "tok-2"
    assert _runs(counter) == 2


def test_a_short_lived_token_is_replaced_after_half_its_life(tmp_path: Path) -> None:
    settings, counter = _counting(tmp_path, expires_in=60)
    clock = Clock()
    cache = TokenCache(tmp_path / "store", clock=clock)
    cache.access_token(settings, "a@x.test", "imap.oauth2")
    clock.now += 29
    cache.access_token(settings, "a@x.test", "imap.oauth2")
    assert _runs(counter) == 1
    clock.now += 1
    cache.access_token(settings, "a@x.test", "imap.oauth2")
    assert _runs(counter) == 2


def test_a_forgotten_token_and_a_cleared_cache_ask_the_source_again(tmp_path: Path) -> None:
    settings, _ = _counting(tmp_path)
    cache = TokenCache(tmp_path / "store", clock=Clock())
    cache.access_token(settings, "a@x.test", "imap.oauth2")
    cache.forget(settings, "a@x.test")
    assert cache.access_token(settings, "a@x.test", "imap.oauth2") == "tok-2"
    cache.clear()
    assert cache.access_token(settings, "a@x.test", "imap.oauth2") == "tok-3"
    assert cache.access_token(settings, "a@x.test", "imap.oauth2") == "tok-3"


def test_each_account_has_its_own_token(tmp_path: Path) -> None:
    settings, _ = _counting(tmp_path)
    cache = TokenCache(tmp_path / "store", clock=Clock())
    assert cache.access_token(settings, "a@x.test", "imap.oauth2") == "tok-1"
    assert cache.access_token(settings, "b@x.test", "imap.oauth2") == "tok-2"
    assert cache.access_token(settings, "a@x.test", "smtp.oauth2") == "tok-1"  # IMAP and SMTP share it


def test_threads_asking_at_once_get_one_token_from_one_run(tmp_path: Path) -> None:
    settings, counter = _counting(tmp_path)
    cache = TokenCache(tmp_path / "store")
    got: list[str] = []
    start = threading.Barrier(8)

    def ask() -> None:
        start.wait()
        got.append(cache.access_token(settings, "a@x.test", "imap.oauth2"))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert got == ["tok-1"] * 8
    assert _runs(counter) == 1


def test_a_static_token_is_read_anew_each_time(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    settings = OAuth2Settings.model_validate({"token": {"env": "MAILROOM_TEST_TOKEN"}})
    cache = TokenCache(tmp_path)
    monkeypatch.setenv("MAILROOM_TEST_TOKEN", "one")
    assert cache.access_token(settings, "a@x.test", "imap.oauth2") == "one"
    monkeypatch.setenv("MAILROOM_TEST_TOKEN", "two")  # renewed by whoever keeps it fresh
    assert cache.access_token(settings, "a@x.test", "imap.oauth2") == "two"


# How a failing source reads.


def _command(code: str) -> OAuth2Settings:
    return OAuth2Settings(refresh_command=shlex.join([sys.executable, "-c", code]))


def test_a_command_exiting_non_zero_is_final_and_says_why(tmp_path: Path) -> None:
    settings = _command("import sys; print('noise', file=sys.stderr); sys.exit('consent revoked')")
    with pytest.raises(OAuth2Error) as caught:
        TokenCache(tmp_path).access_token(settings, "a@x.test", "imap.oauth2")
    assert caught.value.retriable is False
    assert "imap.oauth2: the refresh command" in str(caught.value)
    assert "exited with code 1: consent revoked; run it by hand" in str(caught.value)


def test_a_command_that_hangs_is_retriable(tmp_path: Path) -> None:
    settings = _command("import time; time.sleep(5)")
    with pytest.raises(OAuth2Error) as caught:
        TokenCache(tmp_path, command_timeout=0.3).access_token(settings, "a@x.test", "imap.oauth2")
    assert caught.value.retriable is True
    assert "did not finish within 0.3 s" in str(caught.value)


def test_a_command_that_does_not_exist_is_final(tmp_path: Path) -> None:
    settings = OAuth2Settings(refresh_command="/nonexistent/print-token --user a")
    with pytest.raises(OAuth2Error) as caught:
        TokenCache(tmp_path).access_token(settings, "a@x.test", "imap.oauth2")
    assert caught.value.retriable is False
    assert "/nonexistent/print-token cannot be run" in str(caught.value)


def _endpoint(refresh_token: object) -> OAuth2Settings:
    return OAuth2Settings.model_validate(
        {"token_endpoint": "https://oauth2.example/token", "client_id": "c", "refresh_token": refresh_token}
    )


REVOKED = b'{"error": "invalid_grant", "error_description": "Token has been expired or revoked."}'


@pytest.mark.parametrize(
    ("refresh_token", "place"),
    [
        ({"env": "SUPPORT_RT"}, "the environment variable SUPPORT_RT (imap.oauth2.refresh_token)"),
        ({"file": "/run/secrets/rt"}, "the file /run/secrets/rt (imap.oauth2.refresh_token)"),
        ("rt-literal", "imap.oauth2.refresh_token in the configuration"),
    ],
)
def test_a_revoked_refresh_token_is_final_with_the_providers_words_and_where_to_put_a_new_one(
    refresh_token: object, place: str
) -> None:
    settings = _endpoint(refresh_token)
    assert isinstance(settings.refresh_token, EnvSecret | FileSecret | SecretStr)
    error = _refused(400, REVOKED, "https://oauth2.example/token", settings, "imap.oauth2")
    assert error.retriable is False
    assert str(error) == (
        "imap.oauth2: the token endpoint https://oauth2.example/token refused the refresh (HTTP 400): "
        "invalid_grant: Token has been expired or revoked.; sign in again and store a new refresh token in "
        f"{place} (mailroom then uses it instead of the one it kept)"
    )
    assert "rt-literal" not in str(error)


@pytest.mark.parametrize(
    ("status", "body", "retriable", "says"),
    [
        (
            401,
            b'{"error": "invalid_client", "error_description": "Unauthorized"}',
            False,
            "check imap.oauth2.client_id",
        ),
        (400, b'{"error": "unauthorized_client"}', False, "sign in again"),
        (
            400,
            b'{"error": "invalid_scope", "error_description": "bad scope"}',
            False,
            "invalid_scope: bad scope",
        ),
        (503, b"<html><body>Service   Unavailable</body></html>", True, "<html><body>Service Unavailable"),
        (500, b'{"error": "server_error"}', True, "HTTP 500"),
        (429, b"", True, "no reason given"),
    ],
)
def test_how_a_refusal_is_classified(status: int, body: bytes, retriable: bool, says: str) -> None:
    error = _refused(status, body, "https://oauth2.example/token", _endpoint("rt"), "imap.oauth2")
    assert error.retriable is retriable
    assert says in str(error)


def test_an_oauth2_error_is_a_config_error() -> None:
    from schemas.errors import ConfigError

    assert isinstance(OAuth2Error("x", retriable=True), ConfigError)


def test_a_bad_oauth2_secret_is_named_in_config_errors_but_never_shown() -> None:
    from runtime.loading import parse_config
    from schemas.errors import ConfigError

    oauth2 = "{token_endpoint: 'https://e/t', client_id: c, client_secret: 98765, refresh_token: 12345}"
    text = f"""
mailboxes:
  - id: x
    organization: a
    label: X
    email: x@a.example
    imap: {{host: h, username: u, auth: xoauth2, oauth2: {oauth2}}}
    smtp: {{host: h}}
    processing: {{type: none}}
"""
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    assert "imap.oauth2.client_secret" in str(caught.value)
    assert "imap.oauth2.refresh_token" in str(caught.value)
    assert "98765" not in str(caught.value)
    assert "12345" not in str(caught.value)
