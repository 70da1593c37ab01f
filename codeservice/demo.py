"""``./dev run``: the service on its embedded default, ready to try.

SQLite in the instance folder, dev keys generated in ``keys/`` (if there are
none), a demo resident, then the development server. Prints how to log in.
Options: ``--host``, ``--port``.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from . import create_app, db
from .context import data_keys, key_store
from .errors import Conflict
from .keystore import KeyStore
from .pii import DataKeys
from .residents import register

DEMO_RESIDENT = {
    "name": "张三明",
    "id_type": "resident_id",
    "id_number": "31010419500307001X",  # a made-up number with a valid GB 11643 check digit
    "phone": "13800138000",
    "password": "demo-password-2026",
}


def prepare(app) -> list[str]:  # type: ignore[no-untyped-def]
    """Keys, schema and the demo resident; returns what to tell the user."""
    lines = []
    keys_dir = app.config["KEYS_DIR"]
    if DataKeys.create(keys_dir):
        lines.append(f"created the personal-data key in {keys_dir}")
    if KeyStore.from_config(app.config).init(app.config["SIGNING_ALG"]):
        lines.append(f"created a signing key in {keys_dir}")
    with app.app_context():
        db.init_db()
        lines.append(f"database: {db.engine().url.render_as_string(hide_password=True)}")
        signer = key_store().signer()
        lines.append(f"signing key: {signer.kid} ({signer.alg})")
        try:
            register(db.session(), data_keys(), DEMO_RESIDENT, now=datetime.now(UTC))
            lines.append("created the demo resident")
        except Conflict:
            pass  # registered by an earlier run
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="./dev run", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args(argv)

    app = create_app({"ENV": "development"})
    for line in prepare(app):
        print(line)
    if app.secret_key is None:  # the data key was created just now
        app = create_app({"ENV": "development"})
    base = f"http://{args.host}:{args.port}"
    print(
        f"\ndemo resident: phone {DEMO_RESIDENT['phone']}, password {DEMO_RESIDENT['password']}\n"
        f"log in at {base}/login, then the live code is at {base}/code\n"
        f"public keys: {base}/.well-known/jwks.json   API description: {base}/openapi.json\n"
    )
    sys.stdout.flush()
    app.run(host=args.host, port=args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
