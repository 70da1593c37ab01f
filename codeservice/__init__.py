"""The resident code service: ``create_app()`` wires configuration, storage, keys and routes.

The factory lives in :mod:`codeservice.factory` and is loaded on first use,
so that importing a module that needs no Flask (``codeservice.usage``,
``codeservice.scanners``, ``codeservice.issuance``, ...) imports none.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .factory import MAX_BODY_BYTES, create_app

__all__ = ["MAX_BODY_BYTES", "create_app"]


def __getattr__(name: str) -> Any:
    """``create_app`` and ``MAX_BODY_BYTES``, from :mod:`codeservice.factory` (PEP 562)."""
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from . import factory  # on first use: see the module's docstring

    return getattr(factory, name)
