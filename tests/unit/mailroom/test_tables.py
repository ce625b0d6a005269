"""The command line's plain-text tables and times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from mailroom.tables import table, utc_text


def test_columns_are_padded_to_their_widest_cell_and_the_last_is_not() -> None:
    lines = table([("ID", "STATE", "NOTE"), ("support", "ok", ""), ("x", "retrying", "slow server")])

    assert lines == [
        "ID       STATE     NOTE",
        "support  ok",
        "x        retrying  slow server",
    ]


def test_a_moment_is_shown_in_utc_and_none_as_a_dash() -> None:
    plus_two = timezone(timedelta(hours=2))

    assert utc_text(datetime(2024, 5, 1, 9, 0, tzinfo=plus_two)) == "2024-05-01 07:00:00"
    assert utc_text(datetime(2024, 5, 1, 9, 0, tzinfo=UTC)) == "2024-05-01 09:00:00"
    assert utc_text(datetime(2024, 5, 1, 9, 0)) == "2024-05-01 09:00:00"
    assert utc_text(None) == "-"
