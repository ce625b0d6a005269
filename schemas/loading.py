"""The one seam through which workers get their configuration (a YAML file today; a topic later)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import yaml
from pydantic import ValidationError

from schemas.config import MailroomConfig
from schemas.errors import ConfigError

__all__ = ["ConfigSource", "FileConfigSource", "load_config", "parse_config"]


class ConfigSource(Protocol):
    def load(self) -> MailroomConfig: ...


class FileConfigSource:
    """Reads and validates a YAML file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> MailroomConfig:
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
            path = _describe(data, err["loc"])
            bad = f" (got {err['input']!r})" if err["type"] != "missing" else ""
            lines.append(f"  {path}: {_message(err)}{bad}")
        raise ConfigError("\n".join(lines)) from None


def _message(err: Any) -> str:
    msg = str(err["msg"])
    return msg.removeprefix("Value error, ")


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
