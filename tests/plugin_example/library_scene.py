"""Library loans: a scene added from outside the project, through its entry point.

Context from the scanner: ``{"branch": str}``. Rule: at most 3 loans a day per
resident (``loan_limit``), across branches; configurable as ``daily_limit``.
Usage detail: the branch and the resident's loans today, this one included,
declared in ``usage_fields`` with their labels (the service refuses an
uploaded detail holding anything else, and a history shows only these).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from verifiers import DetailField, Outcome, Scene, StateWrite, Visit
from verifiers.errors import BadContext, SceneRejection
from verifiers.scenes import SceneState


class LoanLimit(SceneRejection):
    code = "loan_limit"
    default_message = "the resident has reached today's loan limit"


@dataclass(frozen=True, slots=True)
class LibraryContext:
    branch: str


class LibraryScene(Scene):
    name = "library"
    rejections = (LoanLimit,)
    context_help = "`branch` (string)"
    usage_fields = (
        DetailField("branch", "text", {"zh": "分馆", "en": "Branch"}, max_length=200),
        DetailField("loans_today", "integer", {"zh": "今日借阅", "en": "Loans today"}, minimum=0, maximum=1000),
    )

    def __init__(self, *, daily_limit: int = 3) -> None:
        self.daily_limit = daily_limit

    def parse_context(self, context: Mapping[str, Any], visit_defaults: Mapping[str, Any]) -> LibraryContext:
        branch = context.get("branch")
        if type(branch) is not str or not branch.strip() or len(branch) > 200:
            raise BadContext("context field 'branch' must be a non-empty string of at most 200 characters")
        return LibraryContext(branch=branch)

    def decide(self, visit: Visit, context: LibraryContext, state: SceneState) -> Outcome:
        key = f"loans:{visit.day}:{visit.sub}"
        loans = state.get(key) or 0
        detail = {"branch": context.branch, "loans_today": loans}
        if loans >= self.daily_limit:
            raise LoanLimit(detail=detail)
        detail["loans_today"] = loans + 1
        return Outcome(detail=detail, writes=[StateWrite(key, loans + 1, visit.day_ends_at)])
