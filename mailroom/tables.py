"""Pure: the plain-text tables the operators' commands print, and how they show a moment."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

__all__ = ["table", "utc_text"]


def table(rows: Sequence[tuple[str, ...]]) -> list[str]:
    """Columns padded to their widest cell, two spaces apart; the last column is not padded, and no line
    ends in spaces."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return [
        (
            "  ".join(cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True))
            + "  "
            + row[-1]
        ).rstrip()
        for row in rows
    ]


def utc_text(moment: datetime | None) -> str:
    """`2024-05-01 07:00:00` in UTC (a moment without an offset is taken as UTC), or `-` for none."""
    if moment is None:
        return "-"
    return (moment.astimezone(UTC) if moment.tzinfo else moment).strftime("%Y-%m-%d %H:%M:%S")
