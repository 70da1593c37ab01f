"""Resident sessions: a signed cookie naming the resident and their auth epoch."""

from __future__ import annotations

from flask import session as cookie

from . import db
from .errors import NotAuthenticated
from .models import Resident


def log_in(resident: Resident) -> None:
    cookie.clear()
    cookie["rid"] = resident.id
    cookie["epoch"] = resident.auth_epoch
    cookie.permanent = True


def log_out() -> None:
    """End this session and every other copy of its cookie."""
    resident = current_resident(required=False)
    if resident is not None:
        resident.auth_epoch += 1
        db.session().commit()
    cookie.clear()


def current_resident(*, required: bool = True) -> Resident | None:
    resident_id, epoch = cookie.get("rid"), cookie.get("epoch")
    resident = db.session().get(Resident, resident_id) if type(resident_id) is int else None
    if resident is None or resident.auth_epoch != epoch:
        if required:
            raise NotAuthenticated()
        return None
    return resident
