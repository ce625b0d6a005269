"""The one seam through which workers get their configuration (a YAML file today; a topic later)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import yaml
from pydantic import ValidationError

from schemas.config import MailroomConfig
from schemas.errors import ConfigError

__all__ = ["ConfigSource", "FileConfigSource", "load_config", "parse_config"]

_Stamp = tuple[int, int, int]


class ConfigSource(Protocol):
    def load(self) -> MailroomConfig: ...


class FileConfigSource:
    """Reads and validates a YAML file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: _Stamp | None = None

    def changed(self) -> MailroomConfig | None:
        """The configuration when the file changed since the last load (or `changed`), else None; a bad
        new version raises ConfigError (and is not looked at again until it changes once more)."""
        try:
            info = self.path.stat()
        except OSError:
            return None
        stamp = (info.st_mtime_ns, info.st_size, info.st_ino)
        if stamp == self._stamp:
            return None
        self._stamp = stamp
        return self.load()

    def load(self) -> MailroomConfig:
        try:
            info = self.path.stat()
            self._stamp = (info.st_mtime_ns, info.st_size, info.st_ino)
        except OSError:
            pass
        try:
            text = self.path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{self.path}: cannot read the configuration: {exc.strerror}") from None
        return parse_config(text, origin=str(self.path))


def load_config(path: Path) -> MailroomConfig:
    return FileConfigSource(path).load()


def parse_config(text: str, origin: str = "<config>") -> MailroomConfig:
    """Validates YAML text; ConfigError names each bad field's path (with the mailbox id) and value."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{origin}: not valid YAML: {exc}") from None
    try:
        return MailroomConfig.model_validate(data if data is not None else {})
    except ValidationError as exc:
        lines = [f"{origin}: invalid configuration:"]
        for err in exc.errors():
            line = f"  {_line(data, err)}"
            if line not in lines:
                lines.append(line)
        raise ConfigError("\n".join(lines)) from None


_SECRETS = ("password", "token", "client_secret", "refresh_token")


def _line(data: Any, err: Any) -> str:
    """`path: message (got value)`; a password's value and whole sections are never shown."""
    loc = tuple(err["loc"])
    secret = next((i for i, part in enumerate(loc) if part in _SECRETS), None)
    if secret is not None:
        # pydantic reports each member of the union (literal or {env: NAME}) separately: say it once.
        return f"{_describe(data, loc[: secret + 1])}: must be a text or {{env: VARIABLE_NAME}}"
    message = str(err["msg"]).removeprefix("Value error, ")
    value = err.get("input")
    shown = err["type"] != "missing" and isinstance(value, str | int | float | bool) and "got" not in message
    return f"{_describe(data, loc)}: {message}" + (f" (got {value!r})" if shown else "")


def _describe(data: Any, loc: tuple[int | str, ...]) -> str:
    """`mailboxes[0](support).rules[1](ack).conditions[0].operator`: indices carry the item's id."""
    parts: list[str] = []
    node = data
    for key in loc:
        if isinstance(key, int):
            item = node[key] if isinstance(node, list) and key < len(node) else None
            ident = item.get("id") if isinstance(item, dict) else None
            parts.append(f"[{key}]" + (f"({ident})" if ident else ""))
            node = item
        else:
            if isinstance(node, dict) and key in node:
                node = node[key]
            else:
                node = None
            parts.append(("." if parts else "") + str(key))
    return "".join(parts) or "(top level)"
