"""The app's shared objects, for the request and CLI code that needs them."""

from __future__ import annotations

from flask import current_app

from .keystore import KeyStore
from .pii import DataKeys


def key_store() -> KeyStore:
    return current_app.extensions["codeservice.keys"]


def data_keys() -> DataKeys:
    """The personal-data keys, loaded once per app (KeyFileError when missing)."""
    keys = current_app.extensions.get("codeservice.data_keys")
    if keys is None:
        keys = current_app.extensions["codeservice.data_keys"] = DataKeys.load(current_app.config["KEYS_DIR"])
    return keys
