"""The small interface every scene implements, and what it is given.

A scene never touches storage itself: it reads its own state through
:class:`SceneState` and returns the writes it wants in its :class:`Outcome`.
The verifier applies those writes, the replay record and the usage record in
one transaction, so a scene is a pure rule over (presentation, state).

A scene also declares the members of the usage detail it logs
(:class:`DetailField`, in ``usage_fields``): :func:`check_detail` holds a
detail to that declaration (the service refuses an uploaded record that
fails it) and :func:`declared_detail` keeps only what it declares (what a
resident's history shows).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol, TypeGuard

from ..errors import BadContext, InvalidDetail, SceneRejection


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
    record_id: str | None = None
    """The id of the usage record this presentation is logged as: unique per scan, unlike ``jti``
    (a paper code's ``jti`` repeats from scan to scan, contract section 9)."""


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


@dataclass(frozen=True, slots=True)
class DetailField:
    """One member of a scene's usage detail, as the scene declares it.

    A member may be absent (a refusal before the scene decides logs an empty
    detail), null where ``nullable``, or else a value of its ``kind``:
    ``"text"`` is a non-blank string of at most ``max_length`` characters
    (valid UTF-8), one of ``choices`` where the scene has a closed set;
    ``"integer"`` is a JSON integer (never a boolean) from ``minimum`` to
    ``maximum``. ``labels`` name the member for people, by language
    (``{"zh": "车站", "en": "Station"}``), and ``choices`` map each value to
    its labels likewise (``{}`` when the value is shown as it is). A member
    that is not ``shown`` is checked but kept out of a resident's history
    page (an id of the scene's state, or what the page says otherwise).
    """

    name: str
    kind: Literal["text", "integer"]
    labels: Mapping[str, str] = field(default_factory=dict)
    nullable: bool = False
    max_length: int = 200
    choices: Mapping[str, Mapping[str, str]] | None = None
    minimum: int | None = None
    maximum: int | None = None
    shown: bool = True

    def __post_init__(self) -> None:
        if type(self.name) is not str or not self.name:
            raise ValueError(f"a detail field's name must be a non-empty string, not {self.name!r}")
        if self.kind not in ("text", "integer"):
            raise ValueError(f"detail field {self.name!r}: kind must be 'text' or 'integer', not {self.kind!r}")
        if self.choices is not None and self.kind != "text":
            raise ValueError(f"detail field {self.name!r}: only text has choices")

    def problem(self, value: Any) -> str | None:
        """Why ``value`` will not do for this member, or None when it will."""
        if value is None:
            return None if self.nullable else "must not be null"
        if self.kind == "integer":
            if type(value) is not int:
                return "must be an integer"
            if (self.minimum is not None and value < self.minimum) or (
                self.maximum is not None and value > self.maximum
            ):
                return f"must be an integer{self.bounds()}"
            return None
        if self.choices is not None:
            if type(value) is not str or value not in self.choices:
                return f"must be one of {', '.join(map(repr, self.choices))}"
            return None
        if not is_text(value, self.max_length):
            return f"must be a non-blank string of at most {self.max_length} characters"
        return None

    def bounds(self) -> str:
        """An integer's bounds in words: `` from 1 to 100``, `` from 0``; empty when it has none."""
        low = "" if self.minimum is None else f" from {self.minimum}"
        high = "" if self.maximum is None else f" to {self.maximum}"
        return low + high

    def label(self, lang: str) -> str:
        """The member's name for people in ``lang``; its own name where the scene gives none."""
        return self.labels.get(lang) or self.name

    def value_text(self, value: Any, lang: str) -> str:
        """A (valid) value as people read it: a choice's label in ``lang``, or the value itself."""
        if self.choices is not None:
            return self.choices.get(value, {}).get(lang) or str(value)
        return str(value)


def check_detail(fields: Sequence[DetailField], detail: Mapping[str, Any]) -> None:
    """Raise :class:`~verifiers.errors.InvalidDetail` naming the first member ``fields`` do not allow.

    ``fields`` are a scene's ``usage_fields``; a scene that declares none
    allows only an empty detail. Members are checked in the detail's order.
    """
    declared = {declared_field.name: declared_field for declared_field in fields}
    for name, value in detail.items():
        declared_field = declared.get(name)
        if declared_field is None:
            if not declared:
                raise InvalidDetail(str(name), "is not a field of this scene's detail: the scene declares no detail")
            raise InvalidDetail(
                str(name), f"is not a field of this scene's detail (it has {', '.join(declared)})"
            )
        problem = declared_field.problem(value)
        if problem is not None:
            raise InvalidDetail(name, problem)


def declared_detail(fields: Sequence[DetailField], detail: Mapping[str, Any]) -> dict[str, Any]:
    """The members of ``detail`` that ``fields`` declare and whose values they allow, in declaration order."""
    kept = {}
    for declared_field in fields:
        if declared_field.name in detail:
            value = detail[declared_field.name]
            if declared_field.problem(value) is None:
                kept[declared_field.name] = value
    return kept


class Scene(ABC):
    """A verifier module: name, context check, rules, usage detail.

    Subclasses are registered under the entry-point group
    ``codeservice.scenes``; the entry point's name is the scene's ``name``.
    Configuration (a fare table, say) arrives as keyword arguments.
    """

    name: str = ""
    context_help: ClassVar[str] = ""
    """What the scanner puts in the context, for people: the service's API description shows it."""
    rejections: ClassVar[tuple[type[SceneRejection], ...]] = ()
    """The scene's own rejections, in the order its rules are checked: their codes are its decision codes."""
    usage_fields: ClassVar[tuple[DetailField, ...]] = ()
    """The members of the usage detail this scene logs, accepted or refused (contract section 3).

    A scene that declares none (one written before declarations) still
    verifies, online and offline, but the service takes an uploaded record
    of it only with an empty detail, and a resident's history shows nothing
    of its detail: undeclared text could say anything to a resident.
    """

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

    def state_keys(self, visit: Visit, context: Any) -> list[str]:
        """The state keys :meth:`decide` reads for this visit, so that a store can read them all at once.

        A store that reads ahead (the service's database: one round trip
        for the claim and every key) asks this before :meth:`decide`; a key
        :meth:`decide` then asks for that is not here costs that store one
        more read, never a wrong answer. By default the keys :meth:`decide`
        asks for when nothing is stored (a scene is a pure rule over its
        state, so running it on empty state changes nothing); a scene whose
        keys depend on what it reads may list them itself.
        """
        asked = _KeysAsked()
        try:
            self.decide(visit, context, asked)
        except Exception:  # a refusal, or a scene's bug: decide() meets it again and it is handled there
            pass
        return asked.keys


class _KeysAsked:
    """A scene's state holding nothing, noting each key asked for (:meth:`Scene.state_keys`)."""

    __slots__ = ("keys",)

    def __init__(self) -> None:
        self.keys: list[str] = []

    def get(self, key: str) -> Any:
        self.keys.append(key)
        return None


# Context helpers shared by scenes: each raises BadContext naming the field.


def is_text(value: object, max_length: int = 200) -> TypeGuard[str]:
    """A non-blank string that a usage record can hold: valid UTF-8 (no lone surrogates) and no NUL
    (neither PostgreSQL nor the service's usage upload takes one)."""
    if type(value) is not str or not value.strip() or len(value) > max_length or "\x00" in value:
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
    return value


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
