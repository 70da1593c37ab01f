"""``./dev run``: the service on its embedded default, ready to try.

SQLite in the instance folder, dev keys generated in ``keys/`` (if there are
none), a demo resident and a demo scanner, then the development server.
Prints how to log in and the scanner's key. Options: ``--host``, ``--port``.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select
from werkzeug.serving import WSGIRequestHandler

from . import create_app, db
from .context import data_keys, key_store, scene_registry
from .errors import Conflict
from .keystore import KeyStore
from .models import Scanner
from .pii import DataKeys
from .residents import register
from .scanners import add_scanner, hash_key

DEMO_RESIDENT = {
    "name": "张三明",
    "id_type": "resident_id",
    "id_number": "31010419500307001X",  # a made-up number with a valid GB 11643 check digit
    "phone": "13800138000",
    "password": "demo-password-2026",
}
DEMO_VENUE, DEMO_DEVICE = "demo-venue", "demo-gate"
DEMO_SCANNER_FILE = "demo-scanner.key"
"""The demo scanner's key, kept (mode 0600) in the keys directory so that every run prints the same one."""


class RequestHandler(WSGIRequestHandler):
    """The development server's handler without its access line.

    Werkzeug's line holds the client's address and the whole request line,
    query string and all. Each request already has the service's own access
    line (``codeservice.access``: method, path, status, duration, request
    id), as under gunicorn, whose access log holds no address or query.
    """

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


def prepare(app) -> tuple[list[str], str]:  # type: ignore[no-untyped-def]
    """Keys, schema, the demo resident and scanner; returns what to tell the user and the scanner's key."""
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
        scanner_key, created = demo_scanner(Path(keys_dir) / DEMO_SCANNER_FILE)
        if created:
            lines.append("created the demo scanner")
    return lines, scanner_key


def demo_scanner(key_file: Path) -> tuple[str, bool]:
    """The demo scanner's key, and whether the scanner was created just now.

    Only the key's hash is in the database, like any scanner's; the key
    itself is kept in ``key_file`` (mode 0600, beside the dev keys) so that
    every run prints the same one. A reset database or ``scanners revoke``
    makes the next run create another.
    """
    session = db.session()
    saved = key_file.read_text().strip() if key_file.exists() else ""
    scanner = session.scalar(select(Scanner).where(Scanner.key_hash == hash_key(saved))) if saved else None
    if scanner is not None and scanner.revoked_at is None:
        return saved, False
    scenes = scene_registry().names()
    _, key = add_scanner(
        session, venue_id=DEMO_VENUE, device_id=DEMO_DEVICE, scenes=scenes, installed=scenes, now=datetime.now(UTC)
    )
    key_file.unlink(missing_ok=True)
    with os.fdopen(os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as file:
        file.write(key + "\n")
    return key, True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="./dev run", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args(argv)

    app = create_app({"ENV": "development"})
    lines, scanner_key = prepare(app)
    for line in lines:
        print(line)
    if app.secret_key is None:  # the data key was created just now
        app = create_app({"ENV": "development"})
    base = f"http://{args.host}:{args.port}"
    print(
        f"\ndemo resident: phone {DEMO_RESIDENT['phone']}, password {DEMO_RESIDENT['password']}\n"
        f"log in at {base}/login, then the live code is at {base}/code\n"
        f"demo scanner: venue {DEMO_VENUE}, device {DEMO_DEVICE}, every installed scene; its key:\n"
        f"  {scanner_key}\n"
        f"verify a code with it:\n"
        f"  curl -H 'Authorization: Bearer {scanner_key}' -H 'Content-Type: application/json' \\\n"
        f"       -d '{{\"token\": \"<the code>\", \"scene\": \"venue\"}}' {base}/api/v1/verify\n"
        f"public keys: {base}/.well-known/jwks.json   API description: {base}/openapi.json\n"
    )
    sys.stdout.flush()
    app.run(host=args.host, port=args.port, request_handler=RequestHandler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
