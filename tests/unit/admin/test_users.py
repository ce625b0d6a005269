from __future__ import annotations

import stat
from pathlib import Path

import pytest

from admin.users import User, add_user, hash_password, load_users, save_users, verify_password


def test_a_password_verifies_against_its_scrypt_hash_and_no_other() -> None:
    stored = hash_password("correct horse")
    scheme, n, r, p, salt, digest = stored.split("$")
    assert (scheme, n, r, p) == ("scrypt", "16384", "8", "1") and salt and digest
    assert "correct horse" not in stored
    assert verify_password("correct horse", stored)
    assert not verify_password("correct hors", stored)
    assert hash_password("correct horse") != stored  # a new salt each time


@pytest.mark.parametrize(
    "stored", ["", "plain", "md5$1$2$3$4$5", "scrypt$x$8$1$AA$AA", "scrypt$16384$8$1$!!$AA"]
)
def test_a_malformed_hash_verifies_nothing(stored: str) -> None:
    assert not verify_password("anything", stored)


def test_roles_are_per_organization() -> None:
    user = User("olga", "x", {"acme": "admin", "globex": "viewer"})
    assert user.may_change("acme") and user.may_see("acme")
    assert user.may_see("globex") and not user.may_change("globex")
    assert not user.may_see("initech") and not user.may_change("initech")
    assert user.organizations() == ["acme", "globex"] and user.organizations("admin") == ["acme"]


def test_users_file_round_trips_with_mode_0600_and_add_keeps_other_roles(tmp_path: Path) -> None:
    path = tmp_path / "users.yaml"
    users: dict[str, User] = {}
    add_user(users, "olga", "pw-1", "acme", "admin")
    save_users(path, users)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = load_users(path)
    add_user(loaded, "olga", None, "globex", "viewer")
    assert loaded["olga"].roles == {"acme": "admin", "globex": "viewer"}
    assert verify_password("pw-1", loaded["olga"].password_hash)
    with pytest.raises(ValueError, match="needs a password"):
        add_user(loaded, "newbie", None, "acme", "viewer")


def test_a_role_other_than_admin_or_viewer_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "users.yaml"
    path.write_text("users:\n  - {name: x, password: y, roles: {acme: owner}}\n")
    with pytest.raises(ValueError, match="admin or viewer"):
        load_users(path)
