"""The small interface every scene implements, and what it is given.

A scene never touches storage itself: it reads its own state through
:class:`SceneState` and returns the writes it wants in its :class:`Outcome`.
The verifier applies those writes, the replay record and the usage record in
one transaction, so a scene is a pure rule over (presentation, state).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from ..errors import BadContext, SceneRejection


@dataclass(slots=True)
class Visit:
    """One accepted code presented at one scanner, as a scene sees it."""

    sub: str
    jti: str
    category: str | None
    now: float
    day: str
    """The local calendar day of ``now`` (YYYY-MM-DD, the verifier's time zone)."""
    day_ends_at: int
    """When ``day`` ends, seconds since the epoch: state kept for a day expires then."""
    venue_id: str | None
    device_id: str | None


@dataclass(slots=True)
class StateWrite:
    key: str
    value: Any
    """A JSON value, or None to delete the key."""
    expires_at: int


@dataclass(slots=True)
class Outcome:
    detail: dict[str, Any]
    writes: list[StateWrite] = field(default_factory=list)


class SceneState(Protocol):
    """Read access to one scene's own state (keys are private to the scene)."""

    def get(self, key: str) -> Any: ...


class Scene(ABC):
    """A verifier module: name, context check, rules, usage detail.

    Subclasses are registered under the entry-point group
    ``codeservice.scenes``; the entry point's name is the scene's ``name``.
    Configuration (a fare table, say) arrives as keyword arguments.
    """

    name: ClassVar[str] = ""
    context_help: ClassVar[str] = ""
    """What the scanner puts in the context, for people: the service's API description shows it."""
    rejections: ClassVar[tuple[type[SceneRejection], ...]] = ()
    """The scene's own rejections, in the order its rules are checked: their codes are its decision codes."""

    def __init__(self, **config: Any) -> None:
        if config:
            raise TypeError(f"scene {self.name!r} takes no configuration, got {sorted(config)}")

    @abstractmethod
    def parse_context(self, context: Mapping[str, Any], visit_defaults: Mapping[str, Any]) -> Any:
        """Validate the scanner's context; raise :class:`BadContext` when it will not do.

        ``visit_defaults`` holds the scanner's ``venue_id`` and ``device_id``.
        Returns whatever :meth:`decide` wants to receive.
        """

    @abstractmethod
    def decide(self, visit: Visit, context: Any, state: SceneState) -> Outcome:
        """Apply the scene's rules in order; raise a SceneRejection subclass on the first failure."""


# Context helpers shared by scenes: each raises BadContext naming the field.


def is_text(value: object, max_length: int = 200) -> bool:
    """A non-blank string that is also valid UTF-8 (no lone surrogates): it reaches usage records."""
    if type(value) is not str or not value.strip() or len(value) > max_length:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def required_text(context: Mapping[str, Any], name: str, *, max_length: int = 200) -> str:
    value = context.get(name)
    if not is_text(value, max_length):
        raise BadContext(f"context field {name!r} must be a non-empty string of at most {max_length} characters")
    return value  # type: ignore[return-value]


def optional_text(context: Mapping[str, Any], name: str, *, max_length: int = 200) -> str | None:
    if context.get(name) is None:
        return None
    return required_text(context, name, max_length=max_length)


def optional_mapping(context: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    value = context.get(name)
    if value is None:
        return None
    if type(value) is not dict or not all(type(key) is str for key in value):
        raise BadContext(f"context field {name!r} must be an object keyed by code id (sub)")
    return value


def optional_positive_int(context: Mapping[str, Any], name: str) -> int | None:
    value = context.get(name)
    if value is None:
        return None
    if type(value) is not int or value < 1:
        raise BadContext(f"context field {name!r} must be a positive integer")
    return value
