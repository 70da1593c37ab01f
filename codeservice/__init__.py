"""The resident code service: ``create_app()`` wires configuration and commands."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import click
from flask import Flask

from . import cli
from .config import load_config
from .errors import ConfigError

__all__ = ["create_app"]


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """The Flask application: defaults, then ``CODESERVICE_*`` variables, then ``config``."""
    try:
        settings = load_config(config)
    except ConfigError as exc:
        if click.get_current_context(silent=True) is not None:
            # Loaded by `flask --app codeservice ...`: one line, not a traceback.
            raise click.ClickException(f"configuration: {exc.message}") from None
        raise
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_mapping(settings)
    # A relative keys directory means the one under the working directory.
    app.config["KEYS_DIR"] = os.path.abspath(app.config["KEYS_DIR"])
    cli.init_app(app)
    return app
