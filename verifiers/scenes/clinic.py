"""Clinic check-in: one check-in per resident per venue per department per day (the venue: the scanner's)."""

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
    required_text,
)


class NoAppointment(SceneRejection):
    code = "no_appointment"
    default_message = "no appointment today for this resident in this department"


class AlreadyCheckedIn(SceneRejection):
    code = "already_checked_in"
    default_message = "already checked in to this department today"


@dataclass(slots=True)
class ClinicContext:
    department: str
    appointments: dict[str, str] | None


class ClinicScene(Scene):
    name = "clinic"
    rejections = (NoAppointment, AlreadyCheckedIn)
    context_help = (
        "`department` (string); optional `appointments`: {sub: appointment id} for today, "
        "where the clinic supplies them"
    )
    usage_fields = (
        DetailField("department", "text", {"zh": "科室", "en": "Department"}),
        DetailField("appointment_id", "text", {"zh": "预约号", "en": "Appointment"}, nullable=True),
    )

    def parse_context(self, context: Mapping[str, Any], visit_defaults: Mapping[str, Any]) -> ClinicContext:
        appointments = optional_mapping(context, "appointments")
        if appointments is not None and not all(is_text(a) for a in appointments.values()):
            raise BadContext("context field 'appointments' must map code ids to appointment ids (strings)")
        return ClinicContext(department=required_text(context, "department"), appointments=appointments)

    def decide(self, visit: Visit, context: ClinicContext, state: SceneState) -> Outcome:
        detail: dict[str, Any] = {"department": context.department, "appointment_id": None}
        if context.appointments is not None:
            appointment_id = context.appointments.get(visit.sub)
            if appointment_id is None:
                raise NoAppointment(detail=detail)
            detail["appointment_id"] = appointment_id
        key = f"checkin:{visit.day}:{context.department}:{visit.sub}"
        if state.get(key) is not None:
            raise AlreadyCheckedIn(detail=detail)
        return Outcome(detail=detail, writes=[StateWrite(key, visit.jti, visit.day_ends_at)])
