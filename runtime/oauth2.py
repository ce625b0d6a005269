"""I/O: XOAUTH2 access tokens for a mailbox's IMAP and SMTP logins (Gmail, Microsoft 365), from its
`oauth2` settings: a static `token`, a `refresh_command`, or the provider's `token_endpoint`.

A token is reused until shortly before it expires, one cache per source shared by the process's threads.
A provider may hand out a new refresh token with each access token: the newest is kept in
`<MAILROOM_DATA_DIR>/oauth2/` (one small JSON file per endpoint, client and account), so a restart uses it;
a refresh token an administrator configures anew wins over the kept one. Tokens never appear in logs or
errors.
"""

from __future__ import annotations

import json
import logging
import re
import shlex
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path
from typing import Any

from runtime.refresh_tokens import RefreshTokenStore, sha256_of
from schemas.config import EnvSecret, FileSecret, ImapSettings, OAuth2Settings, Secret, SmtpSettings, reveal
from schemas.errors import ConfigError

__all__ = [
    "AccessToken",
    "OAuth2Error",
    "TokenCache",
    "forget_imap_token",
    "forget_smtp_token",
    "imap_access_token",
    "parse_command_output",
    "reset",
    "smtp_access_token",
    "use_store_dir",
    "xoauth2_string",
]

logger = logging.getLogger(__name__)

DEFAULT_EXPIRES_IN = 3600.0
"""Seconds an access token lives when its source does not say."""
REFRESH_EARLY = 300.0
"""A token is replaced this long before it expires (at most half its life), so no login races its end."""
COMMAND_TIMEOUT = 30.0
HTTP_TIMEOUT = 30.0

_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
"""A bearer token's characters (RFC 6750 b64token): also what keeps the XOAUTH2 string well formed."""
_REFUSED_GRANT = ("invalid_grant", "invalid_client", "unauthorized_client")
_MAX_ANSWER = 1024 * 1024


class OAuth2Error(ConfigError):
    """A token source failed: network trouble and a provider's 5xx are retriable; a refused refresh token
    or client, a failing refresh command or an unusable answer are not (an administrator must act)."""

    def __init__(self, message: str, retriable: bool) -> None:
        super().__init__(message)
        self.retriable = retriable  # type: ignore[misc]  # per instance: depends on the failure


@dataclass(frozen=True)
class AccessToken:
    """An access token and how many seconds it lives from when it was handed out."""

    value: str
    expires_in: float = DEFAULT_EXPIRES_IN
    refresh_token: str | None = None
    """The provider's newest refresh token, when it handed one out with this access token."""

    def __repr__(self) -> str:
        return f"AccessToken(expires_in={self.expires_in})"


def xoauth2_string(user: str, token: str) -> str:
    """The SASL XOAUTH2 initial client response (before base64)."""
    return f"user={user}\x01auth=Bearer {token}\x01\x01"


def parse_command_output(text: str) -> AccessToken:
    """A refresh command's output: the token alone on a line, or a JSON object with `access_token` and
    optionally `expires_in`. ValueError (never quoting the output, which may hold a token) otherwise."""
    text = text.strip()
    if not text:
        raise ValueError("it printed nothing")
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            raise ValueError("its output starts with '{' but is not a JSON object") from None
        return _token_from_json(data, "its JSON output")
    if not _B64TOKEN.fullmatch(text):
        raise ValueError("print the access token alone, or a JSON object with access_token and expires_in")
    return AccessToken(text)


def _token_from_json(data: Any, what: str) -> AccessToken:
    if not isinstance(data, dict):
        raise ValueError(f"{what} is not a JSON object")
    value = data.get("access_token")
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} has no access_token")
    if not _B64TOKEN.fullmatch(value.strip()):
        raise ValueError(f"{what} has an access_token with characters a bearer token cannot have")
    expires_in = data.get("expires_in", DEFAULT_EXPIRES_IN)
    try:
        seconds = float(expires_in)
    except (TypeError, ValueError):
        raise ValueError(f"{what} has an expires_in that is not a number: {expires_in!r}") from None
    refresh = data.get("refresh_token")
    return AccessToken(value.strip(), seconds, refresh if isinstance(refresh, str) and refresh else None)


def _good_for(token: AccessToken) -> float:
    """Seconds the token may be handed out from when it was obtained."""
    if token.expires_in <= 0:
        return 0.0
    return token.expires_in - min(REFRESH_EARLY, token.expires_in / 2)


class _Entry:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.token: str | None = None
        self.good_until = 0.0
        self.unsaved_refresh_token: str | None = None


class TokenCache:
    """Access tokens per source for the threads of one process; each source is refreshed by one thread at
    a time while the others wait for its result.

    `store_dir`: where refresh tokens are kept; None: `<MAILROOM_DATA_DIR>/oauth2`."""

    def __init__(
        self,
        store_dir: Path | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        http_timeout: float = HTTP_TIMEOUT,
        command_timeout: float = COMMAND_TIMEOUT,
    ) -> None:
        self.store_dir = store_dir
        self._clock = clock
        self._http_timeout = http_timeout
        self._command_timeout = command_timeout
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, ...], _Entry] = {}

    def access_token(self, oauth2: OAuth2Settings, username: str, where: str) -> str:
        """A token for `username` from `oauth2` (`where` names the settings in messages, "imap.oauth2")."""
        if oauth2.token is not None:
            return reveal(oauth2.token)  # kept fresh by someone else: read it anew each time
        entry = self._entry(oauth2, username)
        with entry.lock:
            if entry.token is not None and self._clock() < entry.good_until:
                return entry.token
            started = self._clock()
            if oauth2.refresh_command is not None:
                token = self._run_command(oauth2.refresh_command, where)
            else:
                token = self._refresh(oauth2, username, where, entry)
            entry.token, entry.good_until = token.value, started + _good_for(token)
            logger.info(
                "oauth2: new access token for %s from %s, valid %.0f s",
                username,
                "its refresh command" if oauth2.refresh_command is not None else oauth2.token_endpoint,
                token.expires_in,
            )
            return token.value

    def forget(self, oauth2: OAuth2Settings, username: str) -> None:
        """Drops the cached access token (the server refused it): the next login gets a new one."""
        if oauth2.token is not None:
            return
        entry = self._entry(oauth2, username)
        with entry.lock:
            entry.token, entry.good_until = None, 0.0

    def clear(self) -> None:
        """Forgets every cached access token (what a restart does; kept refresh tokens stay on disk)."""
        with self._lock:
            self._entries.clear()

    def _entry(self, oauth2: OAuth2Settings, username: str) -> _Entry:
        key = _key(oauth2, username)
        with self._lock:
            return self._entries.setdefault(key, _Entry())

    def _store(self) -> RefreshTokenStore:
        if self.store_dir is not None:
            return RefreshTokenStore(self.store_dir)
        from runtime.settings import WorkerSettings

        return RefreshTokenStore(WorkerSettings().data_dir / "oauth2")

    # The refresh-token grant.

    def _refresh(self, oauth2: OAuth2Settings, username: str, where: str, entry: _Entry) -> AccessToken:
        assert oauth2.token_endpoint is not None and oauth2.client_id is not None
        assert oauth2.refresh_token is not None  # the settings model holds these together
        endpoint, client_id = oauth2.token_endpoint, oauth2.client_id
        configured = reveal(oauth2.refresh_token)
        store = self._store()
        path = store.path(endpoint, client_id, username)
        try:
            with store.locked(path):
                # Read under the lock: another process may have spent the token and kept a newer one.
                current = entry.unsaved_refresh_token or store.choose(path, configured)
                token = self._grant(oauth2, current, where)
                if token.refresh_token is not None and token.refresh_token != current:
                    about = {"token_endpoint": endpoint, "client_id": client_id, "username": username}
                    try:
                        store.keep(path, configured, token.refresh_token, about)
                        entry.unsaved_refresh_token = None
                    except OSError as exc:
                        # The provider has already spent the old one: use the newest from memory, and say
                        # that a restart will not have it.
                        entry.unsaved_refresh_token = token.refresh_token
                        logger.error(
                            "oauth2: cannot keep the new refresh token of %s in %s (%s): after a restart, "
                            "sign in again unless the provider still accepts the old one",
                            username,
                            path,
                            exc.strerror or exc,
                        )
                    else:
                        logger.info("oauth2: kept the new refresh token of %s in %s", username, path)
        except OSError as exc:  # the folder cannot be made or locked: refresh nothing we cannot keep
            raise OAuth2Error(
                f"{where}: cannot keep refresh tokens in {store.directory}: {exc.strerror or exc}; "
                "set MAILROOM_DATA_DIR to a writable folder",
                retriable=False,
            ) from None
        return token

    def _grant(self, oauth2: OAuth2Settings, refresh_token: str, where: str) -> AccessToken:
        assert oauth2.token_endpoint is not None and oauth2.client_id is not None
        endpoint = oauth2.token_endpoint
        form = {"grant_type": "refresh_token", "client_id": oauth2.client_id}
        if oauth2.client_secret is not None:
            form["client_secret"] = reveal(oauth2.client_secret)
        form["refresh_token"] = refresh_token
        if oauth2.scope:
            form["scope"] = oauth2.scope
        request = urllib.request.Request(
            endpoint,
            data=urllib.parse.urlencode(form).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self._http_timeout) as answer:
                body = answer.read(_MAX_ANSWER)
        except urllib.error.HTTPError as exc:
            with exc:
                raise _refused(exc.code, exc.read(_MAX_ANSWER), endpoint, oauth2, where) from None
        except (urllib.error.URLError, HTTPException, OSError) as exc:
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            raise OAuth2Error(
                f"{where}: cannot reach the token endpoint {endpoint}: {reason}", retriable=True
            ) from None
        try:
            return _token_from_json(json.loads(body), "the answer")
        except ValueError as exc:
            raise OAuth2Error(
                f"{where}: the token endpoint {endpoint} gave no usable token: {exc}; check token_endpoint",
                retriable=False,
            ) from None

    # A refresh command.

    def _run_command(self, command: str, where: str) -> AccessToken:
        """Runs `command` without a shell (split as a POSIX shell would split it): write
        `sh -c '...'` for pipes or variables."""
        try:
            args = shlex.split(command)
        except ValueError as exc:
            raise OAuth2Error(f"{where}: refresh_command cannot be split: {exc}", retriable=False) from None
        if not args:
            raise OAuth2Error(f"{where}: refresh_command is empty", retriable=False)
        try:
            done = subprocess.run(
                args,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=self._command_timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise OAuth2Error(
                f"{where}: the refresh command {args[0]} did not finish within {self._command_timeout:g} s",
                retriable=True,
            ) from None
        except OSError as exc:
            raise OAuth2Error(
                f"{where}: the refresh command {args[0]} cannot be run: {exc.strerror or exc}",
                retriable=False,
            ) from None
        if done.returncode != 0:
            said = _last_line(done.stderr.decode("utf-8", "replace"))
            raise OAuth2Error(
                f"{where}: the refresh command {args[0]} exited with code {done.returncode}"
                + (f": {said}" if said else "")
                + "; run it by hand to see why (its account may need to sign in again)",
                retriable=False,
            )
        try:
            return parse_command_output(done.stdout.decode("utf-8", "replace"))
        except ValueError as exc:
            raise OAuth2Error(
                f"{where}: the refresh command {args[0]} gave no usable token: {exc}", retriable=False
            ) from None


def _key(oauth2: OAuth2Settings, username: str) -> tuple[str, ...]:
    if oauth2.refresh_command is not None:
        return ("command", oauth2.refresh_command, username)
    assert oauth2.refresh_token is not None
    configured = sha256_of(reveal(oauth2.refresh_token))  # a new configured token starts afresh
    return (
        "endpoint",
        oauth2.token_endpoint or "",
        oauth2.client_id or "",
        username,
        oauth2.scope or "",
        configured,
    )


def _refused(status: int, body: bytes, endpoint: str, oauth2: OAuth2Settings, where: str) -> OAuth2Error:
    """The provider's answer to a refused refresh, with its words and what to do about them."""
    error, description = "", ""
    try:
        data = json.loads(body)
        if isinstance(data, dict):
            error, description = str(data.get("error", "")), str(data.get("error_description", ""))
    except ValueError:
        description = " ".join(body.decode("utf-8", "replace").split())[:200]
    said = ": ".join(part for part in (error, description) if part) or "no reason given"
    message = f"{where}: the token endpoint {endpoint} refused the refresh (HTTP {status}): {said}"
    if status >= 500 or status in (408, 429):
        return OAuth2Error(message, retriable=True)
    assert oauth2.refresh_token is not None
    sign_in = (
        f"sign in again and store a new refresh token in {_place(oauth2.refresh_token, where)} "
        "(mailroom then uses it instead of the one it kept)"
    )
    if error == "invalid_grant":
        advice = sign_in
    elif error in _REFUSED_GRANT:
        advice = f"check {where}.client_id and client_secret; if they are right, {sign_in}"
    else:
        advice = f"check {where} (token_endpoint, client_id, client_secret, scope)"
    return OAuth2Error(f"{message}; {advice}", retriable=False)


def _place(secret: Secret, where: str) -> str:
    if isinstance(secret, EnvSecret):
        return f"the environment variable {secret.env} ({where}.refresh_token)"
    if isinstance(secret, FileSecret):
        return f"the file {secret.file} ({where}.refresh_token)"
    return f"{where}.refresh_token in the configuration"


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


_tokens = TokenCache()


def imap_access_token(settings: ImapSettings) -> str:
    """The access token for an IMAP XOAUTH2 login; OAuth2Error or ConfigError when its source fails."""
    if settings.oauth2 is None:
        raise OAuth2Error("imap: auth xoauth2 needs oauth2 settings", retriable=False)
    return _tokens.access_token(settings.oauth2, settings.username, "imap.oauth2")


def smtp_access_token(settings: SmtpSettings) -> str:
    """The access token for an SMTP AUTH XOAUTH2 login; OAuth2Error or ConfigError when its source fails."""
    if settings.oauth2 is None:
        raise OAuth2Error("smtp: no oauth2 settings", retriable=False)
    if not settings.username:
        raise OAuth2Error("smtp.oauth2 needs smtp.username (the account the token is for)", retriable=False)
    return _tokens.access_token(settings.oauth2, settings.username, "smtp.oauth2")


def forget_imap_token(settings: ImapSettings) -> None:
    """The server refused the token: the next login gets a new one instead of the cached one."""
    if settings.oauth2 is not None:
        _tokens.forget(settings.oauth2, settings.username)


def forget_smtp_token(settings: SmtpSettings) -> None:
    """The server refused the token: the next login gets a new one instead of the cached one."""
    if settings.oauth2 is not None and settings.username:
        _tokens.forget(settings.oauth2, settings.username)


def use_store_dir(path: Path | None) -> None:
    """Where this process keeps refresh tokens (tests); None: `<MAILROOM_DATA_DIR>/oauth2`."""
    _tokens.store_dir = path


def reset() -> None:
    """Forgets this process's cached access tokens, as a restart would."""
    _tokens.clear()
