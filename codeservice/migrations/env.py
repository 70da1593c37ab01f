"""Alembic's environment: migrate the connection the caller hands in.

``codeservice.db.init_db`` opens a connection on the app's own engine (so a
PostgreSQL ``search_path`` in the URL, or SQLite's connect hooks, apply) and
passes it as ``config.attributes["connection"]``; there is no URL handling here.
"""

from __future__ import annotations

from alembic import context

from codeservice.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "codeservice migrations run through codeservice.db.init_db() "
        "(or `flask --app codeservice init-db`), which passes the app's connection"
    )

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    compare_type=True,
    # SQLite cannot ALTER most things: autogenerate batch (copy-and-move) operations.
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
