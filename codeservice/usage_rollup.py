"""The usage records counted into ``usage_hourly`` after their commit (PostgreSQL, migration 0012). No Flask.

Every reader of ``usage_hourly`` rolls up first; so do uploads (once a batch),
the retention prune (before each batch it deletes) and the verify path's
housekeeping (one decision in ``PURGE_EVERY``), which keeps the records not
yet counted to about that many.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session


def roll_up(session: Session) -> None:
    """Count into ``usage_hourly`` the usage records committed since the last roll-up, and commit.

    PostgreSQL: ``usage_hourly_roll_up()`` (migration 0012), so that a figure
    read next counts every record committed before it. SQLite: nothing (its
    trigger counts each record as it is inserted).
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT usage_hourly_roll_up()"))
        session.commit()
