"""Time is injected: the store and the alert engine ask a clock, so tests move time instead of waiting."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """Aware UTC now, the form every timestamp is kept in."""
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """In aware UTC; a time without an offset (as SQLite gives back every timestamp, kept in UTC) is taken
    as UTC."""
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


class FixedClock:
    """A clock tests set and move by hand."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now
