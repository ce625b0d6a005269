"""Pure: the email package's `policy.default`, made fast for mailroom's volumes.

The standard header registry builds a new class for every header it parses or sets (a `type(...)` call in
`HeaderRegistry.__getitem__`); composing one reply set a dozen headers and paid for a dozen classes.
`POLICY` is `policy.default` whose registry keeps each class once made; headers parse and fold exactly as
the standard ones do.
"""

from __future__ import annotations

from email import policy
from email.headerregistry import BaseHeader, HeaderRegistry

__all__ = ["POLICY", "SMTPUTF8_POLICY", "SMTP_POLICY"]


class _CachedRegistry(HeaderRegistry):
    def __init__(self) -> None:
        super().__init__()
        self._made: dict[str, type[BaseHeader]] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        made = self._made.get(key)
        if made is None:
            made = self._made[key] = super().__getitem__(key)
        return made


_REGISTRY = _CachedRegistry()

POLICY = policy.default.clone(header_factory=_REGISTRY)
"""`policy.default`, its header classes made once."""
SMTP_POLICY = policy.SMTP.clone(header_factory=_REGISTRY)
"""`policy.SMTP` (CRLF line ends), its header classes made once."""
SMTPUTF8_POLICY = policy.SMTPUTF8.clone(header_factory=_REGISTRY)
"""`policy.SMTPUTF8`, its header classes made once."""
