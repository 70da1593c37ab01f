"""Retention: ``prune_usage`` and ``flask --app codeservice usage prune``."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, insert, select

from codeservice import db
from codeservice.models import UsageHourly, UsageRecord
from codeservice.retention import parse_age, prune_usage

NOW = datetime(2026, 11, 18, 11, 6, 40, tzinfo=UTC)
TABLE = UsageRecord.__table__


def record(age: timedelta, now: datetime = NOW) -> dict[str, Any]:
    """A usage record decided ``age`` before ``now``."""
    return {
        "id": str(uuid.uuid4()),
        "scene": "venue",
        "venue_id": "museum-1",
        "device_id": "gate-1",
        "sub": "q1w2e3r4t5y6u7i8",
        "jti": uuid.uuid4().hex[:16],
        "decided_at": now - age,
        "ok": True,
        "code": "ok",
        "detail": {},
        "scanner_id": None,
        "online": True,
        "received_at": now - age,
    }


def add_records(ages: list[timedelta], now: datetime = NOW) -> list[str]:
    """One usage record decided ``age`` before ``now`` for each age, committed; their ids."""
    rows = [record(age, now) for age in ages]
    session = db.session()
    session.execute(insert(TABLE), rows)
    session.commit()
    return [row["id"] for row in rows]


def remaining_ids() -> set[str]:
    return set(db.session().scalars(select(TABLE.c.id)))


def test_prune_removes_exactly_the_old_records(app: Any) -> None:
    with app.app_context():
        keep = add_records([timedelta(0), timedelta(days=1), timedelta(days=179, hours=23), timedelta(days=180)])
        drop = add_records([timedelta(days=180, seconds=1), timedelta(days=365), timedelta(days=3000)])
        assert prune_usage(db.session(), timedelta(days=180), NOW) == len(drop)
        assert remaining_ids() == set(keep)
        assert prune_usage(db.session(), timedelta(days=180), NOW) == 0


def test_prune_works_in_batches(app: Any) -> None:
    with app.app_context():
        keep = add_records([timedelta(hours=1)])
        add_records([timedelta(days=200 + n) for n in range(25)])
        assert prune_usage(db.session(), timedelta(days=180), NOW, batch_size=10) == 25
        assert remaining_ids() == set(keep)


def test_prune_refuses_a_non_positive_age_or_a_naive_now(app: Any) -> None:
    with app.app_context():
        with pytest.raises(ValueError):
            prune_usage(db.session(), timedelta(0), NOW)
        with pytest.raises(ValueError):
            prune_usage(db.session(), timedelta(days=1), NOW.replace(tzinfo=None))


@pytest.mark.parametrize(
    ("text", "age"), [("180d", timedelta(days=180)), ("12h", timedelta(hours=12)), ("7D", timedelta(days=7))]
)
def test_parse_age(text: str, age: timedelta) -> None:
    assert parse_age(text) == age


def test_the_command_prunes_and_says_how_many(app: Any, runner: Any) -> None:
    now = datetime.now(UTC)
    with app.app_context():
        keep = add_records([timedelta(days=10)], now)
        add_records([timedelta(days=181), timedelta(days=400)], now)
    result = runner.invoke(args=["usage", "prune", "--older-than", "180d"])
    assert result.exit_code == 0, result.output
    assert "Removed 2 usage records" in result.output
    with app.app_context():
        assert remaining_ids() == set(keep)
        assert db.session().scalar(select(func.count()).select_from(TABLE)) == 1


@pytest.mark.parametrize("garbage", ["", "180", "d", "-5d", "0d", "1.5d", "10w", "180 days", "1e3d"])
def test_the_command_refuses_a_bad_age(app: Any, runner: Any, garbage: str) -> None:
    result = runner.invoke(args=["usage", "prune", "--older-than", garbage])
    assert result.exit_code == 2
    assert "Invalid value for '--older-than'" in result.output
    assert "Traceback" not in result.output


def test_the_command_needs_an_age(runner: Any) -> None:
    result = runner.invoke(args=["usage", "prune"])
    assert result.exit_code == 2
    assert "--older-than" in result.output



def test_prune_deletes_a_record_only_once_it_is_counted_in(app: Any) -> None:
    """PostgreSQL counts records after their commit (migration 0012): the prune leaves one not counted yet."""
    with app.app_context():
        if db.engine().dialect.name != "postgresql":
            pytest.skip("SQLite's trigger counts each record as it is inserted")
        hour = NOW.replace(minute=0, second=0)  # the cutoff's hour: its roll-up row is kept
        in_flight = db.engine().connect()
        in_flight.begin()
        in_flight.execute(insert(TABLE), [record(NOW - hour - timedelta(minutes=2))])  # decided at 11:02
        add_records([timedelta(minutes=5)])  # committed, but after the transaction still open began
        try:
            assert prune_usage(db.session(), timedelta(minutes=1), NOW) == 0  # not counted yet: kept
        finally:
            in_flight.commit()
            in_flight.close()
        assert prune_usage(db.session(), timedelta(minutes=1), NOW) == 2  # both counted in, then deleted
        assert remaining_ids() == set()
        counted = select(func.sum(UsageHourly.records)).where(UsageHourly.hour_start == int(hour.timestamp()))
        assert db.session().scalar(counted) == 2
