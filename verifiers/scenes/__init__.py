"""Scenes are plug-ins: built-in ones are loaded exactly like third-party ones.

Every scene is a :class:`~verifiers.scenes.base.Scene` subclass registered
under the entry-point group ``codeservice.scenes``; the entry point's name is
the scene's name. A registry refuses a second scene of the same name.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any

from ..errors import RULE_REJECTIONS, SceneRegistryError, SceneRejection
from .base import (
    DetailField,
    Outcome,
    Scene,
    SceneState,
    StateWrite,
    Visit,
    check_detail,
    declared_detail,
)

ENTRY_POINT_GROUP = "codeservice.scenes"

__all__ = [
    "ENTRY_POINT_GROUP",
    "DetailField",
    "Outcome",
    "Scene",
    "SceneRegistry",
    "SceneState",
    "StateWrite",
    "Visit",
    "check_detail",
    "declared_detail",
]


class SceneRegistry:
    """Scene name -> Scene class; duplicates refused."""

    def __init__(self) -> None:
        self._classes: dict[str, type[Scene]] = {}

    def register(self, name: str, scene_class: type[Scene]) -> None:
        if not (isinstance(scene_class, type) and issubclass(scene_class, Scene)):
            raise SceneRegistryError(f"scene {name!r}: {scene_class!r} is not a Scene subclass")
        _check_rejections(name, scene_class.rejections)
        _check_usage_fields(name, scene_class)
        existing = self._classes.get(name)
        if existing is not None and existing is not scene_class:
            raise SceneRegistryError(
                f"scene {name!r} is registered twice: {_dotted(existing)} and {_dotted(scene_class)}"
            )
        self._classes[name] = scene_class

    def names(self) -> list[str]:
        return sorted(self._classes)

    def __contains__(self, name: object) -> bool:
        return name in self._classes

    def context_help(self) -> dict[str, str]:
        """What each scene wants in its context, for people: its ``context_help``, by name."""
        return {name: self._classes[name].context_help for name in self.names()}

    def rejection_codes(self, scene: str | None = None) -> list[str]:
        """One scene's own decision codes, in its rules' order; without ``scene``, every rejection's
        code: the rules' (contract section 2), then each installed scene's, by name."""
        if scene is not None:
            return [rejection.code for rejection in self._classes[scene].rejections]
        codes = [rejection.code for rejection in RULE_REJECTIONS]
        for name in self.names():
            codes.extend(code for code in self.rejection_codes(name) if code not in codes)
        return codes

    def usage_fields(self, name: str | None) -> tuple[DetailField, ...]:
        """The fields scene ``name`` declares for its usage detail; none for a scene not registered here."""
        scene_class = self._classes.get(name) if name is not None else None
        return scene_class.usage_fields if scene_class is not None else ()

    def create(self, name: str, config: Mapping[str, Any] | None = None) -> Scene:
        scene_class = self._classes[name]
        scene = scene_class(**(config or {}))
        scene.name = name  # the entry point's name is the scene's name
        return scene

    @classmethod
    def from_entry_points(cls, group: str = ENTRY_POINT_GROUP) -> SceneRegistry:
        registry = cls()
        for entry_point in entry_points(group=group):
            try:
                scene_class = entry_point.load()
            except Exception as exc:  # a broken plug-in must say which one
                raise SceneRegistryError(
                    f"scene {entry_point.name!r} ({entry_point.value}) cannot be loaded: {exc}"
                ) from exc
            registry.register(entry_point.name, scene_class)
        return registry


def _check_rejections(name: str, rejections: object) -> None:
    """A scene declares its rejections as a tuple of SceneRejection subclasses, each with a code of its own."""
    if type(rejections) is not tuple:
        raise SceneRegistryError(f"scene {name!r}: 'rejections' must be a tuple of SceneRejection subclasses")
    rule_codes = {rule.code for rule in RULE_REJECTIONS}
    for rejection in rejections:
        if not (isinstance(rejection, type) and issubclass(rejection, SceneRejection) and "code" in vars(rejection)):
            raise SceneRegistryError(f"scene {name!r}: {rejection!r} is not a SceneRejection with a code of its own")
        if rejection.code in rule_codes:
            raise SceneRegistryError(f"scene {name!r}: {rejection.code!r} is a rule's code, not a scene's")


def _check_usage_fields(name: str, scene_class: type[Scene]) -> None:
    fields = scene_class.usage_fields
    if type(fields) is not tuple or not all(isinstance(item, DetailField) for item in fields):
        raise SceneRegistryError(f"scene {name!r}: usage_fields must be a tuple of DetailField")
    names = [item.name for item in fields]
    if len(set(names)) != len(names):
        raise SceneRegistryError(f"scene {name!r} declares a usage field twice: {names}")


def _dotted(scene_class: type) -> str:
    return f"{scene_class.__module__}.{scene_class.__qualname__}"
