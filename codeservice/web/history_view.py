"""The history page's entries: a stored usage record, told in the reader's language.

Times are shown in China Standard Time (UTC+8), as the verifiers' days are
counted. A decision is told by its code: an accepted one by what it meant at
its scene (entered, exited with the fare, checked in), a refused one by its
reason; a code no catalogue entry knows (a third-party scene's) is shown as
it is. The scene's detail (station, department, ...) follows: only the
members the scene declares (``usage_fields``) and shows, under the scene's
own labels in the reader's language, each value as text: nothing a scanner
uploaded is rendered as markup, and nothing a scene does not declare is
shown at all. The place is the record's venue, the scanner's: a detail's own
``venue_id`` is never shown.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta, timezone
from typing import Any

from verifiers import DetailField
from verifiers.contract import FORMS

from .. import usage
from . import i18n

LOCAL_TIME = timezone(timedelta(hours=8), "CST")
BUILT_IN_SCENES = ("clinic", "transit", "venue")
MAX_DETAIL_ITEMS = 8
MAX_VALUE_CHARS = 100
# The forms a code is presented in (contract sections 5 and 9); a record without one is online.



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
    form: str
    """How the code was presented, in words: online code, device code, paper code."""
    details: list[tuple[str, str]] = field(default_factory=list)


def entry(row: Any, lang: str, fields: Sequence[DetailField]) -> Entry:
    """One record as the page shows it; ``fields`` are what its scene declares of its detail."""
    detail = usage.history_detail(row, fields)
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
        form=form_text(getattr(row, "form", None), lang),
        # An accepted transit decision already says in or out.
        details=detail_items(detail, fields, lang, shown_direction=bool(row.ok) and row.scene == "transit"),
    )


def form_text(form: object, lang: str) -> str:
    """The record's form in words; a record without a form (or with one no catalogue knows) is online."""
    return i18n.translate(f"form_{form if form in FORMS else 'online'}", lang)


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
    detail: dict[str, Any], fields: Sequence[DetailField], lang: str, *, shown_direction: bool = False
) -> list[tuple[str, str]]:
    """(label, value) of the declared, shown members of ``detail`` (:func:`usage.history_detail`'s), in
    declaration order, labelled by the scene."""
    items = []
    for declared in fields:
        value = detail.get(declared.name)
        if not declared.shown or value is None:
            continue
        if declared.name == "direction" and shown_direction:
            continue
        if declared.name == "party_size" and value == 1:
            continue
        items.append((declared.label(lang), declared.value_text(value, lang)[:MAX_VALUE_CHARS]))
        if len(items) == MAX_DETAIL_ITEMS:
            break
    return items
