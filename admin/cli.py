"""Entry: `mailroom admin` serves the web admin; `mailroom admin users add` writes its users file.

    mailroom admin [--host HOST] [--port PORT]
    mailroom admin users add NAME --org ORG --role admin|viewer     (the password from stdin or a prompt)

Settings: MAILROOM_ADMIN_HOST (127.0.0.1), MAILROOM_ADMIN_PORT (8080), MAILROOM_ADMIN_USERS (the users file,
default `<data dir>/admin-users.yaml`), MAILROOM_ADMIN_SECRET_FILE (the key that signs sessions, default
`<data dir>/admin-secret`, made when missing), and the pipeline's MAILROOM_KAFKA_* and MAILROOM_DATA_DIR.
"""

from __future__ import annotations

import argparse
import getpass
import os
import secrets
import sys
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

from admin.users import ROLES, add_user, load_users, save_users
from runtime import logs
from runtime.settings import WorkerSettings

__all__ = ["AdminSettings", "main", "session_key"]


class AdminSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MAILROOM_ADMIN_", frozen=True)

    host: str = "127.0.0.1"
    port: int = 8080
    users: Path | None = None
    secret_file: Path | None = None
    secrets_dir: Path | None = None
    """Where passwords typed in the forms are kept (default `MAILROOM_DATA_DIR/admin-secrets`); the
    configuration refers to them by path, so ingest and responder must see this folder at the same path."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mailroom admin", description="The web admin of mailroom.")
    parser.add_argument("--host", help="the address to listen on (MAILROOM_ADMIN_HOST, 127.0.0.1)")
    parser.add_argument("--port", type=int, help="the port to listen on (MAILROOM_ADMIN_PORT, 8080)")
    sub = parser.add_subparsers(dest="command")
    users = sub.add_parser("users", help="the admin's users")
    what = users.add_subparsers(dest="action", required=True)
    add = what.add_parser(
        "add", help="add a user or give one a role in an organization (password from stdin or a prompt)"
    )
    add.add_argument("name")
    add.add_argument("--org", required=True, metavar="ORG", help="the organization")
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument("--keep-password", action="store_true", help="an existing user keeps their password")
    return parser


def session_key(path: Path) -> bytes:
    """The key that signs session cookies, made (random, mode 0600) when the file does not exist."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


def _read_password(name: str) -> str:
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass(f"password for {name}: ")
    if first != getpass.getpass("again: "):
        raise ValueError("the two passwords differ")
    return first


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = WorkerSettings()
        admin_settings = AdminSettings()
    except Exception as exc:  # pydantic-settings' validation error: show it without a trace
        print(f"mailroom admin: invalid environment settings: {exc}", file=sys.stderr)
        return 2
    users_path = admin_settings.users or settings.data_dir / "admin-users.yaml"
    if args.command == "users":
        try:
            users = load_users(users_path)
            password = None if args.keep_password and args.name in users else _read_password(args.name)
            add_user(users, args.name, password, args.org, args.role)
        except ValueError as exc:
            print(f"mailroom admin users add: {exc}", file=sys.stderr)
            return 2
        save_users(users_path, users)
        print(f"{args.name}: {args.role} of {args.org} (in {users_path})")
        return 0
    return _serve(args, settings, admin_settings, users_path)


def _serve(
    args: argparse.Namespace, settings: WorkerSettings, admin_settings: AdminSettings, users_path: Path
) -> int:
    import uvicorn
    from kafka.errors import KafkaError

    from admin.app import create_app
    from admin.store import KafkaStore
    from admin.web import Admin

    logs.configure(settings.log_level, settings.log_format)
    logs.quiet_kafka()
    key = session_key(admin_settings.secret_file or settings.data_dir / "admin-secret")
    try:
        store = KafkaStore(settings.kafka)
    except (KafkaError, TimeoutError) as exc:
        print(f"mailroom admin: Kafka at {settings.kafka.bootstrap_servers}: {exc}", file=sys.stderr)
        return 1
    host, port = args.host or admin_settings.host, args.port or admin_settings.port
    secrets_dir = (admin_settings.secrets_dir or settings.data_dir / "admin-secrets").resolve()
    app = create_app(Admin(store, users_path, key, settings.data_dir.resolve(), secrets=secrets_dir))
    print(f"mailroom admin: http://{host}:{port}/ (users in {users_path})", file=sys.stderr, flush=True)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        store.close()
    return 0
