"""Declared JSON shapes: an object's members, each with its JSON Schema and what it holds.

A shape is declared once, as a tuple of :class:`Member`, and both its uses
are built from it: the code that writes or checks such an object, and the
service's OpenAPI schema of it (``codeservice.openapi``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

JSON_TYPES: Mapping[str, type] = MappingProxyType(
    {"string": str, "integer": int, "number": float, "boolean": bool, "object": dict, "array": list}
)
"""JSON Schema type name -> the Python type ``json.loads`` gives (a ``number`` may also be an ``int``)."""


@dataclass(frozen=True, slots=True)
class Member:
    """One member of a JSON object."""

    name: str
    schema: Mapping[str, Any]
    """Its JSON Schema: ``{"type": "string", "pattern": ...}``; ``"type": ["string", "null"]`` when it may be null."""
    description: str | None = None
    required: bool = True
    """Whether the object must hold it (a required member may still be null if its type allows)."""
    _types: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        kind = self.schema.get("type", ())
        object.__setattr__(self, "_types", (kind,) if isinstance(kind, str) else tuple(kind))

    @property
    def json_types(self) -> tuple[str, ...]:
        """Its JSON type names, ``null`` left out."""
        return tuple(name for name in self._types if name != "null")

    @property
    def nullable(self) -> bool:
        return "null" in self._types

    def json_schema(self) -> dict[str, Any]:
        """The member's schema with its description, as an OpenAPI document gives it."""
        if self.description is None:
            return dict(self.schema)
        return {**self.schema, "description": self.description}


def names(members: tuple[Member, ...]) -> tuple[str, ...]:
    return tuple(member.name for member in members)
