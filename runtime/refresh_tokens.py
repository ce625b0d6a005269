"""I/O: the newest refresh token of each OAuth2 account, kept on disk so that a restart uses it, for
providers that hand out a new refresh token with each access token (runtime/oauth2.py)."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["RefreshTokenStore", "sha256_of"]

logger = logging.getLogger(__name__)


def sha256_of(*parts: str) -> str:
    """A hex SHA-256 of the parts (NUL-separated): file names and the configured token's fingerprint."""
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


class RefreshTokenStore:
    """The newest refresh token of each (endpoint, client, account), one JSON file each in `directory`
    (mode 0600, replaced atomically), with a hash of the refresh token configured when it was kept: a
    different configured token means an administrator signed in again, and the configured one wins."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, endpoint: str, client_id: str, username: str) -> Path:
        return self.directory / f"{sha256_of(endpoint, client_id, username)}.json"

    def choose(self, path: Path, configured: str) -> str:
        """The refresh token to use: the kept newest one while the configured one is unchanged."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return configured
        except (OSError, ValueError) as exc:
            logger.warning("oauth2: %s cannot be read (%s); using the configured refresh token", path, exc)
            return configured
        kept = data.get("refresh_token") if isinstance(data, dict) else None
        if not isinstance(kept, str) or not kept or data.get("configured_sha256") != sha256_of(configured):
            return configured
        return kept

    def keep(self, path: Path, configured: str, newest: str, about: dict[str, str]) -> None:
        """Writes the newest refresh token (atomically: a temporary file renamed over the old one)."""
        record = {
            **about,
            "configured_sha256": sha256_of(configured),
            "refresh_token": newest,
            "updated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        self._folder()
        fd, temp = tempfile.mkstemp(prefix=".tmp-", dir=self.directory)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(record, handle, indent=2)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise

    @contextlib.contextmanager
    def locked(self, path: Path) -> Iterator[None]:
        """Holds an exclusive lock on `path`'s refresh (also against other processes on this folder):
        with a provider that rotates refresh tokens, two refreshes at once would spend one token twice."""
        self._folder()
        with open(path.with_suffix(".lock"), "a") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def _folder(self) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
