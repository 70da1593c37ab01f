"""Retention: usage records are kept for a while, then deleted in bounded batches."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import cast

from sqlalchemy import Table, delete, or_, select
from sqlalchemy.orm import Session

from .models import UsageHourly, UsageRecord, UsageRollupMark
from .usage_rollup import roll_up

__all__ = ["BATCH_SIZE", "parse_age", "prune_usage"]

BATCH_SIZE = 10_000
"""Rows deleted per transaction: a big table is never locked for long."""

_AGE = re.compile(r"([1-9][0-9]{0,5})([dh])")
_UNITS = {"d": "days", "h": "hours"}


def parse_age(text: str) -> timedelta:
    """``180d`` or ``12h`` -> a timedelta; ``ValueError`` for anything else (or zero)."""
    match = _AGE.fullmatch(text.strip().lower())
    if match is None:
        raise ValueError(f"{text!r} is not an age such as 180d or 12h")
    number, unit = match.groups()
    return timedelta(**{_UNITS[unit]: int(number)})


def prune_usage(session: Session, older_than: timedelta, now: datetime, *, batch_size: int = BATCH_SIZE) -> int:
    """Delete the usage records decided before ``now - older_than``; how many were deleted.

    One transaction per batch of at most ``batch_size`` rows. The console's
    hourly roll-up goes with them, for the whole hours before the cutoff
    (the hour it falls in keeps the count of its records pruned). Only
    records counted in already are deleted (PostgreSQL rolls up after the
    commit, migration 0012: each batch rolls up first); one committed since
    is left for the next prune.
    """
    if older_than <= timedelta(0):
        raise ValueError("older_than must be positive")
    if now.tzinfo is None:
        raise ValueError("now must carry a time zone")
    cutoff = (now - older_than).astimezone(UTC)
    table = cast(Table, UsageRecord.__table__)  # a mapped class's table is typed as any FromClause
    counted = or_(table.c.rollup_xact.is_(None), table.c.rollup_xact < select(UsageRollupMark.upto).scalar_subquery())
    batch = select(table.c.id).where(table.c.decided_at < cutoff, counted).limit(batch_size).scalar_subquery()
    statement = delete(table).where(table.c.id.in_(batch))
    removed = 0
    while True:
        roll_up(session)
        count = session.connection().execute(statement).rowcount
        session.commit()
        removed += count
        if count < batch_size:
            hour = int(cutoff.timestamp()) // 3600 * 3600
            session.execute(delete(UsageHourly).where(UsageHourly.hour_start < hour))
            session.commit()
            return removed
