"""A tiny OAuth2 provider on 127.0.0.1 for tests: a token endpoint (refresh-token grant, rotating refresh
tokens as some providers do) and the introspection endpoint Dovecot's oauth2 passdb asks about tokens."""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["OAuthProvider"]

logger = logging.getLogger(__name__)

_REVOKED = {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}


class OAuthProvider:
    """`with OAuthProvider() as p: rt = p.issue_refresh_token("a@x.test")`, then POST the refresh-token
    grant to `p.token_endpoint`; Dovecot checks access tokens at `p.introspection_url` (POST `token=`).

    Each refresh returns a new refresh token and invalidates the one it was given (`rotate=False` keeps
    it). A revoked, unknown or used refresh token gets HTTP 400 `invalid_grant`."""

    host = "127.0.0.1"

    def __init__(
        self,
        client_id: str = "mailroom-test",
        client_secret: str | None = "test-secret",
        *,
        expires_in: int = 3600,
        rotate: bool = True,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.expires_in = expires_in
        self.rotate = rotate
        self._lock = threading.Lock()
        self._refresh: dict[str, str] = {}  # refresh token -> user
        self._access: dict[str, tuple[str, float]] = {}  # access token -> (user, expires at)
        self._refreshes: Counter[str] = Counter()
        self._failures: list[tuple[int, dict[str, str]]] = []
        self.requests: list[dict[str, str]] = []
        """The form fields of every token request, in order (tests check what clients send)."""
        self._server = ThreadingHTTPServer((self.host, 0), _handler(self))
        self._server.daemon_threads = True
        self.port: int = self._server.server_address[1]
        self._thread: threading.Thread | None = None

    @property
    def token_endpoint(self) -> str:
        return f"http://{self.host}:{self.port}/token"

    @property
    def introspection_url(self) -> str:
        return f"http://{self.host}:{self.port}/introspect"

    # Helpers for tests.

    def issue_refresh_token(self, user: str) -> str:
        """A refresh token for `user`, as the provider's consent screen would hand it out."""
        token = "rt-" + secrets.token_urlsafe(24)
        with self._lock:
            self._refresh[token] = user
        return token

    def issue_access_token(self, user: str, expires_in: float | None = None) -> str:
        """An access token valid for `expires_in` seconds (the provider's default when None)."""
        token = "at-" + secrets.token_urlsafe(24)
        with self._lock:
            lifetime = self.expires_in if expires_in is None else expires_in
            self._access[token] = (user, time.time() + lifetime)
        return token

    def revoke(self, token: str) -> None:
        """Invalidate a refresh or access token (a user who signs out everywhere, an admin who blocks)."""
        with self._lock:
            self._refresh.pop(token, None)
            self._access.pop(token, None)

    def revoke_user(self, user: str) -> None:
        """Invalidate every token of `user`."""
        with self._lock:
            self._refresh = {t: u for t, u in self._refresh.items() if u != user}
            self._access = {t: v for t, v in self._access.items() if v[0] != user}

    def expire_access_tokens(self, user: str) -> None:
        """Let every access token of `user` run out now (refresh tokens stay valid)."""
        with self._lock:
            self._access = {t: v for t, v in self._access.items() if v[0] != user}

    def check_access_token(self, user: str, token: str) -> bool:
        """Whether `token` is an active access token of `user` (for deploy.local.smtp's XOAUTH2)."""
        answer = self._introspect(token)
        return bool(answer["active"]) and answer.get("username") == user

    def refresh_count(self, user: str | None = None) -> int:
        """Successful refreshes so far, of `user` or of everyone."""
        with self._lock:
            return self._refreshes[user] if user is not None else sum(self._refreshes.values())

    def valid_refresh_tokens(self, user: str) -> list[str]:
        with self._lock:
            return [t for t, u in self._refresh.items() if u == user]

    def fail_next(self, status: int, body: dict[str, str] | None = None, times: int = 1) -> None:
        """Answer the next `times` token requests with `status` and the JSON `body` (e.g. 503)."""
        with self._lock:
            self._failures = [(status, body or {"error": "temporarily_unavailable"})] * times

    # Endpoints (called on the server's threads).

    def _token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.requests.append(dict(form))
            if self._failures:
                return self._failures.pop()
            if form.get("grant_type") != "refresh_token":
                return 400, {"error": "unsupported_grant_type", "error_description": "Only refresh_token."}
            if form.get("client_id") != self.client_id or (
                self.client_secret is not None and form.get("client_secret") != self.client_secret
            ):
                return 401, {
                    "error": "invalid_client",
                    "error_description": "The OAuth client was not found.",
                }
            given = form.get("refresh_token", "")
            user = self._refresh.get(given)
            if user is None:
                return 400, dict(_REVOKED)
            access = "at-" + secrets.token_urlsafe(24)
            self._access[access] = (user, time.time() + self.expires_in)
            self._refreshes[user] += 1
            body: dict[str, Any] = {
                "access_token": access,
                "token_type": "Bearer",
                "expires_in": self.expires_in,
            }
            if "scope" in form:
                body["scope"] = form["scope"]
            if self.rotate:
                del self._refresh[given]
                newest = "rt-" + secrets.token_urlsafe(24)
                self._refresh[newest] = user
                body["refresh_token"] = newest
            return 200, body

    def _introspect(self, token: str) -> dict[str, Any]:
        with self._lock:
            found = self._access.get(token)
        if found is None or found[1] <= time.time():
            return {"active": False}
        return {"active": True, "username": found[0], "exp": int(found[1])}

    # Lifecycle.

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever, name="oauth-provider", daemon=True)
        self._thread.start()
        logger.info("oauth provider listening on %s:%d", self.host, self.port)

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> OAuthProvider:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _handler(provider: OAuthProvider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            form = _form(self.rfile.read(length).decode("utf-8", "replace"))
            path = urlsplit(self.path).path
            if path == "/token":
                self._answer(*provider._token(form))
            elif path == "/introspect":
                self._answer(200, provider._introspect(form.get("token", "")))
            else:
                self._answer(404, {"error": "not_found"})

        def do_GET(self) -> None:  # introspection_mode = get (token appended) or auth (Bearer header)
            url = urlsplit(self.path)
            if url.path != "/introspect":
                self._answer(404, {"error": "not_found"})
                return
            bearer = self.headers.get("Authorization", "")
            token = bearer[7:] if bearer.startswith("Bearer ") else _form(url.query).get("token", "")
            self._answer(200, provider._introspect(token))

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # never print tokens to stderr
            logger.debug("oauth provider: %s %s", self.command, urlsplit(self.path).path)

    return Handler


def _form(text: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(text, keep_blank_values=True).items()}
