"""Transit gates: entry opens a trip, exit closes it and computes the fare.

A trip is the venue's, like every scene's state: a transit scanner's venue is the
network its gate belongs to, whose stations the context names.
"""

from __future__ import annotations

import math
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
    optional_text,
    required_text,
)


class Passback(SceneRejection):
    code = "passback"
    default_message = "a trip is already open for this resident: exit first"


class NoEntry(SceneRejection):
    code = "no_entry"
    default_message = "no open trip for this resident: no entry was recorded"


@dataclass(frozen=True, slots=True)
class FareTable:
    """Distance bands: up to ``bands[i][0]`` km costs ``bands[i][1]`` cents; beyond
    the last band, ``extra_cents`` for every started ``extra_km``. A trip between
    stations missing from ``stations_km`` (km markers along the network) costs
    the first band's fare: a flat fare where no distances are configured."""

    bands: tuple[tuple[float, int], ...] = ((6.0, 300), (16.0, 400))
    extra_km: float = 10.0
    extra_cents: int = 100
    stations_km: Mapping[str, float] | None = None

    def fare_cents(self, from_station: str, to_station: str) -> int:
        stations = self.stations_km or {}
        if from_station not in stations or to_station not in stations:
            return self.bands[0][1]
        distance = abs(stations[to_station] - stations[from_station])
        for limit_km, cents in self.bands:
            if distance <= limit_km:
                return cents
        last_km, last_cents = self.bands[-1]
        return last_cents + math.ceil((distance - last_km) / self.extra_km) * self.extra_cents


# Percent of the fare each concession category pays.
DEFAULT_CONCESSIONS = {"senior": 0, "disabled": 0, "child": 50, "student": 50}
DEFAULT_MAX_TRIP_SECONDS = 4 * 3600
MAX_FARE_CENTS = 1_000_000
"""The highest fare a usage record may carry (¥10,000): far above any fare table's."""


@dataclass(slots=True)
class TransitContext:
    station: str
    direction: str
    line: str | None


class TransitScene(Scene):
    name = "transit"
    rejections = (Passback, NoEntry)
    context_help = "`station` (string), `direction` (`in` or `out`); optional `line` (string)"
    usage_fields = (
        DetailField("station", "text", {"zh": "车站", "en": "Station"}),
        DetailField(
            "direction",
            "text",
            {"zh": "方向", "en": "Direction"},
            choices={"in": {"zh": "进站", "en": "Entry"}, "out": {"zh": "出站", "en": "Exit"}},
        ),
        DetailField("line", "text", {"zh": "线路", "en": "Line"}, nullable=True),
        # The history tells the fare in its sentence; a trip id means nothing to a resident.
        DetailField(
            "fare_cents", "integer", {"zh": "车费（分）", "en": "Fare (cents)"},
            nullable=True, minimum=0, maximum=MAX_FARE_CENTS, shown=False,
        ),
        DetailField("trip_id", "text", {"zh": "行程号", "en": "Trip"}, nullable=True, max_length=64, shown=False),
        DetailField("entry_station", "text", {"zh": "进站车站", "en": "Entered at"}),
        # The concession the exit's fare was computed with (null: the full fare), for fare clearing.
        DetailField(
            "category",
            "text",
            {"zh": "优惠类别", "en": "Concession"},
            nullable=True,
            choices={
                "senior": {"zh": "老年人", "en": "Senior"},
                "student": {"zh": "学生", "en": "Student"},
                "disabled": {"zh": "残疾人", "en": "Disabled"},
                "child": {"zh": "儿童", "en": "Child"},
            },
            shown=False,
        ),
    )

    def __init__(
        self,
        *,
        fare_table: FareTable | Mapping[str, Any] | None = None,
        concessions: Mapping[str, int] | None = None,
        max_trip_seconds: int = DEFAULT_MAX_TRIP_SECONDS,
    ) -> None:
        if isinstance(fare_table, Mapping):
            fields: dict[str, Any] = {k: tuple(map(tuple, v)) if k == "bands" else v for k, v in fare_table.items()}
            fare_table = FareTable(**fields)
        self.fare_table = fare_table or FareTable()
        self.concessions = dict(DEFAULT_CONCESSIONS if concessions is None else concessions)
        self.max_trip_seconds = max_trip_seconds
        """An open trip older than this (a forgotten exit) no longer blocks entry."""

    def parse_context(self, context: Mapping[str, Any], visit_defaults: Mapping[str, Any]) -> TransitContext:
        direction = context.get("direction")
        if direction not in ("in", "out"):
            raise BadContext("context field 'direction' must be 'in' or 'out'")
        return TransitContext(
            station=required_text(context, "station"), direction=direction, line=optional_text(context, "line")
        )

    def decide(self, visit: Visit, context: TransitContext, state: SceneState) -> Outcome:
        trip_key = f"trip:{visit.sub}"
        trip = state.get(trip_key)
        detail: dict[str, Any] = {
            "station": context.station,
            "direction": context.direction,
            "line": context.line,
            "fare_cents": None,
            "trip_id": trip["id"] if trip else None,
        }
        if context.direction == "in":
            if trip is not None:
                raise Passback(detail=detail)
            # The entry record's id (contract section 9): a paper code's jti is the same at every scan.
            trip_id = visit.record_id or visit.jti
            detail["trip_id"] = trip_id
            opened = {"id": trip_id, "station": context.station, "line": context.line, "entered_at": int(visit.now)}
            expires_at = int(visit.now) + self.max_trip_seconds
            return Outcome(detail=detail, writes=[StateWrite(trip_key, opened, expires_at)])
        if trip is None:
            raise NoEntry(detail=detail)
        detail["entry_station"] = trip["station"]
        detail["fare_cents"] = self.fare(trip["station"], context.station, visit.category)
        detail["category"] = visit.category if visit.category in self.concessions else None
        return Outcome(detail=detail, writes=[StateWrite(trip_key, None, 0)])

    def fare(self, from_station: str, to_station: str, category: str | None) -> int:
        full = self.fare_table.fare_cents(from_station, to_station)
        percent = self.concessions.get(category, 100) if category else 100
        return full * percent // 100
