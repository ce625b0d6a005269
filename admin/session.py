"""Pure: the signed session cookie and the CSRF token of each session.

A session is a small JSON object (the user's name, a CSRF token, when it ends) signed with HMAC-SHA256 under
the admin's secret key: a browser can read it but not change it. Every form carries the session's CSRF
token and every POST (and JSON write, in the `X-CSRF-Token` header) is refused without it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from typing import Any

__all__ = ["COOKIE", "MAX_AGE", "csrf_ok", "new_session", "sign", "unsign"]

COOKIE = "mailroom_admin"
MAX_AGE = 12 * 3600


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_session(user: str | None, now: float | None = None) -> dict[str, Any]:
    """A fresh session (a new CSRF token) for `user` (None: not logged in yet, the login form's session)."""
    return {
        "user": user,
        "csrf": secrets.token_urlsafe(24),
        "until": int((now if now is not None else time.time()) + MAX_AGE),
    }


def sign(session: dict[str, Any], key: bytes) -> str:
    payload = _b64(json.dumps(session, separators=(",", ":"), sort_keys=True).encode())
    mac = hmac.new(key, payload.encode(), hashlib.sha256).digest()
    return f"{payload}.{_b64(mac)}"


def unsign(cookie: str | None, key: bytes, now: float | None = None) -> dict[str, Any] | None:
    """The session the cookie carries; None when it is missing, forged, malformed or expired."""
    if not cookie or "." not in cookie:
        return None
    payload, _, mac = cookie.rpartition(".")
    expected = hmac.new(key, payload.encode(), hashlib.sha256).digest()
    try:
        if not hmac.compare_digest(_unb64(mac), expected):
            return None
        session = json.loads(_unb64(payload))
    except (ValueError, TypeError):
        return None
    if not isinstance(session, dict) or not isinstance(session.get("csrf"), str):
        return None
    if int(session.get("until", 0)) < (now if now is not None else time.time()):
        return None
    return session


def csrf_ok(session: dict[str, Any] | None, token: str | None) -> bool:
    """Whether `token` is the session's CSRF token (constant time)."""
    if session is None or not token:
        return False
    return hmac.compare_digest(str(session["csrf"]).encode(), token.encode())
