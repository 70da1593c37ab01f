"""The history page's entries: a stored usage record, told in the reader's language.

Times are shown in China Standard Time (UTC+8), as the verifiers' days are
counted. A decision is told by its code: an accepted one by what it meant at
its scene (entered, exited with the fare, checked in), a refused one by its
reason; a code no catalogue entry knows (a third-party scene's) is shown as
it is. The scene's detail (station, department, venue, ...) follows, each
value as text: nothing a scanner uploaded is rendered as markup.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from .. import usage
from . import i18n

LOCAL_TIME = timezone(timedelta(hours=8), "CST")
BUILT_IN_SCENES = ("clinic", "transit", "venue")
# Detail members with a label of their own; any other member is labelled by its name.
DETAIL_LABELS = (
    "station",
    "entry_station",
    "line",
    "direction",
    "department",
    "appointment_id",
    "venue_id",
    "party_size",
    "reservation_id",
)
# Shown in the decision's sentence (the fare) or meaningless to a resident (ids of state).
HIDDEN_DETAIL = frozenset({"fare_cents", "trip_id"})
MAX_DETAIL_ITEMS = 8
MAX_VALUE_CHARS = 100


@dataclass(frozen=True, slots=True)
class Entry:
    ok: bool
    scene: str
    decision: str
    when: str
    """Local time, ``2026-11-18 19:06``."""
    when_iso: str
    """The record's ``decided_at`` (UTC), for ``<time datetime=...>``."""
    place: str | None
    offline: bool
    details: list[tuple[str, str]] = field(default_factory=list)


def entry(row: Any, lang: str) -> Entry:
    """One record as the page shows it."""
    detail = row.detail if isinstance(row.detail, dict) else {}
    decided_at = usage.utc(row.decided_at)
    place = " · ".join(part for part in (row.venue_id, row.device_id) if part) or None
    return Entry(
        ok=bool(row.ok),
        scene=scene_name(row.scene, lang),
        decision=decision_text(row.scene, row.code, bool(row.ok), detail, lang),
        when=decided_at.astimezone(LOCAL_TIME).strftime("%Y-%m-%d %H:%M"),
        when_iso=usage.rfc3339(decided_at),
        place=place,
        offline=not row.online,
        # An accepted transit decision already says in or out.
        details=detail_items(detail, row.venue_id, lang, shown_direction=bool(row.ok) and row.scene == "transit"),
    )


def scene_name(scene: str | None, lang: str) -> str:
    if scene in BUILT_IN_SCENES:
        return i18n.translate(f"scene_{scene}", lang)
    return scene or i18n.translate("scene_unknown", lang)


def decision_text(scene: str | None, code: str, ok: bool, detail: dict[str, Any], lang: str) -> str:
    if ok:
        if scene == "transit":
            if detail.get("direction") == "out":
                fare = detail.get("fare_cents")
                if type(fare) is int and fare >= 0:
                    return i18n.translate("decision_accepted_transit_out_fare", lang, fare=yuan(fare))
                return i18n.translate("decision_accepted_transit_out", lang)
            return i18n.translate("decision_accepted_transit_in", lang)
        if scene in BUILT_IN_SCENES:
            return i18n.translate(f"decision_accepted_{scene}", lang)
        return i18n.translate("decision_accepted", lang)
    key = f"decision_{code}"
    if i18n.has(key):
        return i18n.translate(key, lang)
    return i18n.translate("decision_other", lang, code=code)


def yuan(cents: int) -> str:
    return f"¥{cents // 100}.{cents % 100:02d}"


def detail_items(
    detail: dict[str, Any], venue_id: str | None, lang: str, *, shown_direction: bool = False
) -> list[tuple[str, str]]:
    """(label, value) of the detail's members a resident can read: text and whole numbers."""
    items = []
    for name, value in detail.items():
        if name in HIDDEN_DETAIL or value is None or type(value) not in (str, int):
            continue
        if name == "direction" and shown_direction:
            continue
        if name == "venue_id" and value == venue_id:
            continue  # already shown as the place
        if name == "party_size" and value == 1:
            continue
        text = str(value)
        if name == "direction" and value in ("in", "out"):
            text = i18n.translate(f"direction_{value}", lang)
        label = i18n.translate(f"detail_{name}", lang) if name in DETAIL_LABELS else str(name)[:40]
        items.append((label, text[:MAX_VALUE_CHARS]))
        if len(items) == MAX_DETAIL_ITEMS:
            break
    return items
