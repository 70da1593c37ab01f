"""``./dev run``: the service on its embedded default, ready to try.

SQLite in the instance folder, dev keys generated in ``keys/`` (if there are
none), a demo resident and a demo scanner, then the development server.
Prints how to log in and the scanner's key. Options: ``--host``, ``--port``.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select
from werkzeug.serving import WSGIRequestHandler

from . import create_app, db
from .context import data_keys, key_store, scene_registry
from .errors import Conflict
from .keystore import KeyStore
from .models import Operator, Scanner, UsageRecord
from .operators import add_operator
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
DEMO_OPERATOR = {"username": "demo-operator", "password": "demo-console-2026"}
"""The console's demo account: a fixed password, not asked to be changed (a real one is, at its first login)."""
DEMO_USAGE_RECORDS = 400
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
        if demo_operator():
            lines.append("created the demo operator")
        added = demo_usage(datetime.now(UTC))
        if added:
            lines.append(f"added {added} usage records of the last 24 hours, for the console")
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


def demo_operator() -> bool:
    """The console's demo operator (every venue), unless there is one; whether it was created now."""
    session = db.session()
    if session.scalar(select(Operator.id).where(Operator.username == DEMO_OPERATOR["username"])) is not None:
        return False
    add_operator(session, DEMO_OPERATOR["username"], [], now=datetime.now(UTC), password=DEMO_OPERATOR["password"])
    return True


def demo_usage(now: datetime) -> int:
    """A day of the demo scanner's usage (a gate, a museum door, a clinic desk), if it has none in the last 24 h."""
    session = db.session()
    scanner = session.scalar(select(Scanner).where(Scanner.venue_id == DEMO_VENUE, Scanner.revoked_at.is_(None)))
    since = now - timedelta(hours=24)
    if scanner is None or session.scalar(
        select(func.count()).select_from(UsageRecord).where(UsageRecord.decided_at >= since)
    ):
        return 0
    draw = random.Random(2026)
    stations = ("人民广场", "陆家嘴", "徐家汇", "静安寺")
    records = []
    for _ in range(DEMO_USAGE_RECORDS):
        scene = draw.choices(("transit", "venue", "clinic"), (6, 3, 1))[0]
        refused = draw.random() < 0.06
        detail: dict[str, object]
        if scene == "transit":
            out = draw.random() < 0.5
            code = draw.choice(("no_entry", "expired")) if refused and out else "passback" if refused else "accepted"
            category = draw.choice((None, None, None, None, "senior", "student")) if out and not refused else None
            detail = {"station": draw.choice(stations), "direction": "out" if out else "in", "line": "2",
                      "fare_cents": (300 if category is None else 150 if category == "student" else 0)
                      if out and not refused else None}
            if out and not refused:
                detail["category"] = category
        elif scene == "venue":
            code = "already_entered" if refused else "accepted"
            detail = {"venue_id": DEMO_VENUE, "party_size": draw.choice((1, 1, 2, 3)), "reservation_id": None,
                      "capacity": 300}
        else:
            code = "already_checked_in" if refused else "accepted"
            detail = {"department": draw.choice(("内科", "外科", "儿科")), "appointment_id": None}
        # busier in the morning and the evening, as a city's day is
        hours_ago = draw.choice((draw.uniform(0, 24), draw.triangular(0, 24, 14), draw.triangular(0, 24, 4)))
        records.append(
            UsageRecord(
                id=str(uuid.UUID(int=draw.getrandbits(128), version=4)), scene=scene, venue_id=DEMO_VENUE,
                device_id=DEMO_DEVICE, sub=f"demo{draw.getrandbits(48):012x}", jti=None,
                decided_at=now - timedelta(hours=hours_ago), ok=code == "accepted", code=code, detail=detail,
                scanner_id=scanner.id, online=draw.random() < 0.7, received_at=now,
                form=draw.choices(("online", "device", "paper"), (80, 15, 5))[0],
            )
        )
    session.add_all(records)
    session.commit()
    return len(records)


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
        f"operator console: {base}/console/login as {DEMO_OPERATOR['username']}, "
        f"password {DEMO_OPERATOR['password']} (every venue; the demo's usage is today's)\n"
    )
    sys.stdout.flush()
    app.run(host=args.host, port=args.port, request_handler=RequestHandler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
