"""`mailroom admin users add`: the users file, written from the command line."""

from __future__ import annotations

import io
import stat
from pathlib import Path

import pytest

from admin.cli import session_key
from admin.users import load_users, verify_password
from mailroom.cli import main


def test_users_add_reads_the_password_from_stdin_and_keeps_only_its_hash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "users.yaml"
    monkeypatch.setenv("MAILROOM_ADMIN_USERS", str(path))
    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret-pw\n"))
    assert main(["admin", "users", "add", "olga", "--org", "acme", "--role", "admin"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert (
        main(["admin", "users", "add", "olga", "--org", "globex", "--role", "viewer", "--keep-password"]) == 0
    )
    assert "olga: viewer of globex" in capsys.readouterr().out
    olga = load_users(path)["olga"]
    assert olga.roles == {"acme": "admin", "globex": "viewer"}
    assert verify_password("s3cret-pw", olga.password_hash) and "s3cret-pw" not in path.read_text()


def test_the_session_key_is_made_once_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "data" / "admin-secret"
    key = session_key(path)
    assert len(key) == 64 and session_key(path) == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
