"""Cultural venues: one entry per resident per venue per day, capacity, reservations."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import BadContext, SceneRejection
from .base import (
    DetailField,
    Outcome,
    Scene,
    SceneState,
    StateWrite,
    Visit,
    is_text,
    optional_mapping,
    optional_positive_int,
    optional_text,
)

MAX_PARTY_SIZE = 100
MAX_CAPACITY = 100_000_000
"""The largest capacity a usage record names (a larger one still applies, but is not logged)."""


class AlreadyEntered(SceneRejection):
    code = "already_entered"
    default_message = "already entered this venue today"


class CapacityFull(SceneRejection):
    code = "capacity_full"
    default_message = "the venue has reached today's capacity"


class NoReservation(SceneRejection):
    code = "no_reservation"
    default_message = "no reservation for this resident today"


@dataclass(frozen=True, slots=True)
class Reservation:
    id: str
    party_size: int


@dataclass(slots=True)
class VenueContext:
    venue_id: str
    capacity: int | None
    reservations: dict[str, Reservation] | None


class VenueScene(Scene):
    """``capacity`` counts people a day: a reservation's whole party enters on one code."""

    name = "venue"
    rejections = (AlreadyEntered, CapacityFull, NoReservation)
    context_help = (
        "all optional: `venue_id` (string; the scanner's venue: a different one is refused), "
        "`capacity` (people a day), "
        '`reservations`: {sub: {"id", "party_size"}}'
    )
    usage_fields = (
        # The history's place is the scanner's venue already; a record's own is never shown.
        DetailField("venue_id", "text", {"zh": "场馆", "en": "Venue"}, shown=False),
        DetailField("party_size", "integer", {"zh": "人数", "en": "Party"}, minimum=1, maximum=MAX_PARTY_SIZE),
        DetailField("reservation_id", "text", {"zh": "预约号", "en": "Reservation"}, nullable=True),
        # The capacity (entries a day) the scan was checked against, when the scanner has one: the console's use.
        DetailField(
            "capacity", "integer", {"zh": "容量", "en": "Capacity"}, nullable=True, minimum=1, maximum=MAX_CAPACITY,
            shown=False,
        ),
    )

    def parse_context(self, context: Mapping[str, Any], visit_defaults: Mapping[str, Any]) -> VenueContext:
        venue_id = _scanner_venue(optional_text(context, "venue_id"), visit_defaults.get("venue_id"))
        raw = optional_mapping(context, "reservations")
        reservations = None if raw is None else {sub: _reservation(value) for sub, value in raw.items()}
        return VenueContext(
            venue_id=venue_id, capacity=optional_positive_int(context, "capacity"), reservations=reservations
        )

    def decide(self, visit: Visit, context: VenueContext, state: SceneState) -> Outcome:
        reservation = (context.reservations or {}).get(visit.sub)
        party_size = reservation.party_size if reservation else 1
        detail: dict[str, Any] = {
            "venue_id": context.venue_id,
            "party_size": party_size,
            "reservation_id": reservation.id if reservation else None,
        }
        if context.capacity is not None and context.capacity <= MAX_CAPACITY:
            detail["capacity"] = context.capacity
        entry_key = f"entry:{visit.day}:{context.venue_id}:{visit.sub}"
        if state.get(entry_key) is not None:
            raise AlreadyEntered(detail=detail)
        count_key = f"count:{visit.day}:{context.venue_id}"
        entered = state.get(count_key) or 0
        if context.capacity is not None and entered + party_size > context.capacity:
            raise CapacityFull(detail=detail)
        if context.reservations is not None and reservation is None:
            raise NoReservation(detail=detail)
        return Outcome(
            detail=detail,
            writes=[
                StateWrite(entry_key, visit.jti, visit.day_ends_at),
                StateWrite(count_key, entered + party_size, visit.day_ends_at),
            ],
        )


def _scanner_venue(from_context: str | None, scanner: str | None) -> str:
    """The venue is the scanner's; a context may name it only where the scanner has none (a roaming verifier)."""
    if scanner and from_context and from_context != scanner:
        raise BadContext("context field 'venue_id' names another venue than the scanner's")
    venue_id = scanner or from_context
    if not venue_id:
        raise BadContext("context field 'venue_id' is needed when the scanner has no venue")
    return venue_id


def _reservation(value: object) -> Reservation:
    if type(value) is not dict:
        raise BadContext("each reservation must be an object with 'id' and 'party_size'")
    reservation_id, party_size = value.get("id"), value.get("party_size", 1)
    if not is_text(reservation_id):
        raise BadContext("a reservation's 'id' must be a non-empty string")
    if type(party_size) is not int or not 1 <= party_size <= MAX_PARTY_SIZE:
        raise BadContext(f"a reservation's 'party_size' must be an integer from 1 to {MAX_PARTY_SIZE}")
    return Reservation(reservation_id, party_size)
