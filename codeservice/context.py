"""The app's shared objects, for the request and CLI code that needs them."""

from __future__ import annotations

from typing import cast

from flask import Flask, current_app

from verifiers import SceneRegistry, SceneRegistryError

from .errors import ConfigError
from .extensions import DATA_KEYS, KEYS, SCENES
from .keystore import KeyStore
from .pii import DataKeys


def init_scenes(app: Flask) -> None:
    """Load the installed scenes once, and the scopes issued codes carry (``ISSUED_SCOPES``)."""
    try:
        registry = SceneRegistry.from_entry_points()
    except SceneRegistryError as exc:
        raise ConfigError(str(exc)) from exc
    app.extensions[SCENES] = registry
    app.config["ISSUED_SCOPES"] = issued_scopes(registry.names(), app.config["SCOPES"])


def issued_scopes(installed: list[str], configured: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Every installed scene, or those that ``SCOPES`` names (each of which must be installed)."""
    names = configured.split(",") if isinstance(configured, str) else list(configured)
    wanted = [name.strip() for name in names if name.strip()]
    unknown = sorted(set(wanted) - set(installed))
    if unknown:
        raise ConfigError(f"SCOPES names scenes that are not installed: {', '.join(unknown)}")
    return tuple(sorted(set(wanted))) if wanted else tuple(installed)


def scene_registry() -> SceneRegistry:
    """The installed scenes, loaded once per app."""
    return cast(SceneRegistry, current_app.extensions[SCENES])


def key_store() -> KeyStore:
    return cast(KeyStore, current_app.extensions[KEYS])


def data_keys() -> DataKeys:
    """The personal-data keys, loaded once per app (KeyFileError when missing)."""
    keys = current_app.extensions.get(DATA_KEYS)
    if keys is None:
        keys = current_app.extensions[DATA_KEYS] = DataKeys.load(current_app.config["KEYS_DIR"])
    return keys
