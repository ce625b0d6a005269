"""The web admin's users: names, scrypt password hashes and a role per organization, kept in a YAML file
(MAILROOM_ADMIN_USERS).

    users:
      - name: olga
        password: scrypt$16384$8$1$<salt>$<hash>
        roles: {acme: admin, globex: viewer}

Pure apart from `load_users` and `save_users`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

__all__ = [
    "ROLES",
    "Role",
    "User",
    "add_user",
    "hash_password",
    "load_users",
    "save_users",
    "verify_password",
]

Role = Literal["admin", "viewer"]
ROLES: tuple[Role, ...] = ("admin", "viewer")

_N, _R, _P = 2**14, 8, 1


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str, salt: bytes | None = None) -> str:
    """`scrypt$n$r$p$salt$hash`: what the users file keeps instead of the password."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return f"scrypt${_N}${_R}${_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """Whether `password` is the one `stored` was made of (constant time; False for a malformed hash)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = _unb64(digest)
        made = hashlib.scrypt(
            password.encode(), salt=_unb64(salt), n=int(n), r=int(r), p=int(p), dklen=len(expected)
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(made, expected)


@dataclass(frozen=True)
class User:
    name: str
    password_hash: str
    roles: dict[str, Role] = field(default_factory=dict)

    def role_in(self, organization: str) -> Role | None:
        """The user's role in the organization; None: the organization is not the user's to see."""
        return self.roles.get(organization)

    def may_see(self, organization: str) -> bool:
        return self.role_in(organization) is not None

    def may_change(self, organization: str) -> bool:
        return self.role_in(organization) == "admin"

    def organizations(self, role: Role | None = None) -> list[str]:
        """The user's organizations (those where the user has `role`), sorted."""
        return sorted(org for org, has in self.roles.items() if role is None or has == role)


def _user(entry: Any) -> User:
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise ValueError(f"a user needs a name: {entry!r}")
    roles = entry.get("roles") or {}
    if not isinstance(roles, dict) or any(r not in ROLES for r in roles.values()):
        raise ValueError(f"user {entry['name']!r}: roles map organizations to admin or viewer")
    return User(entry["name"], str(entry.get("password", "")), {str(k): v for k, v in roles.items()})


def load_users(path: Path) -> dict[str, User]:
    """The users file by name (none when it does not exist); ValueError when it is malformed."""
    if not path.exists():
        return {}
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return {u.name: u for u in (_user(e) for e in data.get("users") or [])}


def save_users(path: Path, users: dict[str, User]) -> None:
    """Writes the users file (mode 0600, replaced atomically)."""
    document = {
        "users": [
            {"name": u.name, "password": u.password_hash, "roles": dict(sorted(u.roles.items()))}
            for u in sorted(users.values(), key=lambda u: u.name)
        ]
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_name(path.name + ".new")
    fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        yaml.safe_dump(document, handle, sort_keys=False)
    staged.replace(path)


def add_user(users: dict[str, User], name: str, password: str | None, organization: str, role: Role) -> User:
    """The user with the role in the organization (a new user needs a password; an existing one keeps
    theirs unless one is given)."""
    old = users.get(name)
    if old is None and not password:
        raise ValueError(f"a new user ({name!r}) needs a password")
    password_hash = hash_password(password) if password else old.password_hash  # type: ignore[union-attr]
    roles = {**(old.roles if old else {}), organization: role}
    user = User(name, password_hash, roles)
    users[name] = user
    return user
