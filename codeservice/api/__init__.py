"""The JSON API's routes: the ``/api/v1`` blueprint and the public routes beside it.

The modules only route: the error shape and the request body are
:mod:`codeservice.http`'s, what a route does is its domain module's.
"""

from __future__ import annotations

from flask import Flask

from . import codes, devices, public, residents, revocations, scan, usage  # noqa: F401  (each adds its routes to ``api``)
from .blueprint import api


def init_app(app: Flask) -> None:
    app.register_blueprint(api)
    app.register_blueprint(public.blueprint)
