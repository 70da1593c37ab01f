"""Seed a PostgreSQL schema with millions of usage records, then time the operator console and the day report.

Run by hand (it prints, asserts nothing)::

    .venv/bin/python bench/seed_usage.py [--records 10000000] [--days 30] [--schema console_bench]
    .venv/bin/python bench/seed_usage.py --measure-only [--runs 3]      # the schema seeded before

The schema is made with the service's own migrations (``init-db``), and
each day is counted into ``usage_hourly`` by the service's own roll-up
(``usage_hourly_roll_up()``, migration 0012) once it is committed, as in
production. The records are generated on the server, a local day
per ``INSERT … SELECT … FROM generate_series`` (one statement; the roll-up
folds the day into ``usage_hourly`` in one grouped upsert): about 30 days of

- a busy metro line (``metro-1``: 30 stations, 4 gates each) — 70 % of the
  records, entries and exits, fares with concessions (senior, student,
  child, disabled), refusals (passback, no_entry, expired, replayed);
- 150 venues with a capacity (``venue-001``…) — 20 %, parties of 1 to 4;
- 50 clinics (``clinic-01``…) with five departments — 10 %;

with morning and evening peaks, 80 % online codes, 15 % device, 5 % paper,
and a scanner health report for every offline gate.

Then, on the busiest day, each console page (all venues, one venue) and the
day report (CSV of the records and the clearing, all venues and the metro
line) are timed ``--runs`` times in process (Flask's test client, the same
code as a request under gunicorn minus the socket), and every SQL statement
a page runs is shown with ``EXPLAIN (ANALYZE, BUFFERS)``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_PG_URL = os.environ.get("CODESERVICE_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
STATIONS = 30
GATES_PER_STATION = 4
VENUES = 150
CLINICS = 50

DAY_SQL = """
INSERT INTO usage_records (id, scene, venue_id, device_id, sub, jti, decided_at, ok, code, detail,
                           scanner_id, online, received_at, form)
SELECT gen_random_uuid()::text, s.scene, s.venue_id, s.device_id, s.sub, s.jti, s.decided_at, s.code = 'accepted',
       s.code,
       CASE s.scene
         WHEN 'transit' THEN jsonb_build_object(
           'station', s.station, 'direction', s.direction, 'line', '1',
           'fare_cents', CASE WHEN s.code = 'accepted' AND s.direction = 'out' THEN s.fare END,
           'trip_id', NULL,
           'category', CASE WHEN s.code = 'accepted' AND s.direction = 'out' THEN s.category END)
         WHEN 'venue' THEN jsonb_build_object('venue_id', s.venue_id, 'party_size', s.party,
                                              'reservation_id', NULL, 'capacity', s.capacity)
         ELSE jsonb_build_object('department', s.department, 'appointment_id', NULL)
       END,
       s.scanner_id, s.online, s.decided_at + interval '5 seconds', s.form
FROM (
  SELECT g,
         k.scene,
         CASE k.scene WHEN 'transit' THEN 'metro-1'
                      WHEN 'venue' THEN 'venue-' || lpad((1 + (g * 7) % :venues)::text, 3, '0')
                      ELSE 'clinic-' || lpad((1 + (g * 3) % :clinics)::text, 2, '0') END AS venue_id,
         CASE k.scene WHEN 'transit' THEN 'gate-' || lpad((1 + g % (:stations * :gates))::text, 3, '0')
                      ELSE 'desk-' || (1 + g % 2)::text END AS device_id,
         CASE k.scene WHEN 'transit' THEN 1 + g % (:stations * :gates)
                      WHEN 'venue' THEN 1 + :stations * :gates + ((g * 7) % :venues) * 2 + g % 2
                      ELSE 1 + :stations * :gates + :venues * 2 + ((g * 3) % :clinics) * 2 + g % 2 END AS scanner_id,
         substr(md5(g::text || :day), 1, 16) AS sub,
         substr(md5(g::text || :day || 'j'), 1, 11) AS jti,
         :start + make_interval(secs => 3600 * CASE
             WHEN r.peak < 0.30 THEN 1.5 + r.t * 2.5     -- 07:30-10:00 local (UTC+8)
             WHEN r.peak < 0.55 THEN 11.5 + r.t * 2.5    -- 17:30-20:00
             ELSE r.t * 16 END) AS decided_at,              -- 06:00-22:00
         CASE WHEN r.refused < 0.955 THEN 'accepted'
              ELSE (ARRAY['passback', 'no_entry', 'expired', 'replayed', 'bad_signature', 'capacity_full',
                          'already_entered', 'already_checked_in', 'scene_not_allowed', 'revoked'])
                   [1 + (g % 10)] END AS code,
         'S' || lpad((1 + (g / 4) % :stations)::text, 2, '0') || '站' AS station,
         CASE WHEN g % 2 = 0 THEN 'in' ELSE 'out' END AS direction,
         300 + 100 * (g % 6) AS fare,
         CASE WHEN r.cat < 0.10 THEN 'senior' WHEN r.cat < 0.15 THEN 'student'
              WHEN r.cat < 0.17 THEN 'child' WHEN r.cat < 0.18 THEN 'disabled' END AS category,
         1 + (g % 7) / 4 + (g % 13) / 12 AS party,
         2000 + 100 * ((g * 7) % :venues) AS capacity,
         (ARRAY['内科', '外科', '儿科', '眼科', '口腔科'])[1 + g % 5] AS department,
         r.online < 0.6 AS online,
         CASE WHEN r.form < 0.80 THEN 'online' WHEN r.form < 0.95 THEN 'device' ELSE 'paper' END AS form
  FROM generate_series(1, :n) AS g
  -- (each random() names g, so that it is drawn again for every row)
  CROSS JOIN LATERAL (SELECT random() + 0 * g AS peak, random() + 0 * g AS t, random() + 0 * g AS refused,
                             random() + 0 * g AS cat, random() + 0 * g AS online, random() + 0 * g AS form,
                             random() + 0 * g AS scene_pick) AS r
  CROSS JOIN LATERAL (SELECT CASE WHEN r.scene_pick < 0.70 THEN 'transit'
                                  WHEN r.scene_pick < 0.90 THEN 'venue' ELSE 'clinic' END AS scene) AS k
) AS s
ORDER BY s.decided_at  -- as records land: in time order, give or take an offline upload
"""


def pg_url(base: str, schema: str) -> str:
    return f"{base}?options=-csearch_path%3D{schema}"


def build_app(url: str, keys_dir: Path) -> Any:
    from codeservice import create_app
    from codeservice.keystore import KeyStore
    from codeservice.pii import DataKeys

    keys_dir.mkdir(parents=True, exist_ok=True)
    DataKeys.create(keys_dir)
    KeyStore(keys_dir).init("EdDSA")
    app = create_app({"DATABASE_URL": url, "KEYS_DIR": str(keys_dir), "ENV": "development", "RATE_LIMITS": "off"})
    app.testing = True
    return app


def seed(args: argparse.Namespace) -> None:
    import sqlalchemy as sa

    from codeservice import db

    if not args.resume:
        admin = sa.create_engine(args.pg_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(sa.text(f"DROP SCHEMA IF EXISTS {args.schema} CASCADE"))
            connection.execute(sa.text(f"CREATE SCHEMA {args.schema}"))
        admin.dispose()
    app = build_app(pg_url(args.pg_url, args.schema), args.keys_dir)
    with app.app_context():
        db.init_db()
        engine = db.engine()
        now = datetime.now(UTC)
        if not args.resume:
            _scanners(engine, now)
        per_day = args.records // args.days
        first = args.end_day - timedelta(days=args.days - 1)
        started = time.perf_counter()
        for offset in range(args.days):
            day = first + timedelta(days=offset)
            # The local day (UTC+8) starts at 16:00 UTC the day before; the generated hours count from 06:00 local.
            start = datetime(day.year, day.month, day.day, tzinfo=UTC) - timedelta(hours=8) + timedelta(hours=6)
            count = per_day + (args.records - per_day * args.days if offset == args.days - 1 else 0)
            t0 = time.perf_counter()
            with engine.begin() as connection:
                if args.resume and connection.execute(
                    sa.text("SELECT 1 FROM usage_records WHERE decided_at >= :start AND decided_at < :end LIMIT 1"),
                    {"start": start, "end": start + timedelta(hours=18)},
                ).first():
                    continue  # seeded by the run that was interrupted
                connection.execute(
                    sa.text(DAY_SQL),
                    {"n": count, "start": start, "day": day.isoformat(), "venues": VENUES, "clinics": CLINICS,
                     "stations": STATIONS, "gates": GATES_PER_STATION},
                )
            with engine.begin() as connection:
                connection.execute(sa.text("SELECT usage_hourly_roll_up()"))
            print(f"  {day}: {count:,} records in {time.perf_counter() - t0:.1f} s", flush=True)
        print(f"seeded {args.records:,} records in {time.perf_counter() - started:.0f} s")
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(sa.text("VACUUM ANALYZE usage_records"))
            connection.execute(sa.text("VACUUM ANALYZE usage_hourly"))
            rows = connection.execute(sa.text("SELECT count(*) FROM usage_hourly")).scalar()
            size = connection.execute(
                sa.text("SELECT pg_size_pretty(pg_total_relation_size('usage_records')), "
                        "pg_size_pretty(pg_total_relation_size('usage_hourly'))")
            ).one()
        print(f"usage_records {size[0]}; usage_hourly {rows:,} rows, {size[1]}")


def _scanners(engine: Any, now: datetime) -> None:
    """The metro gates, venue doors and clinic desks, with a health report for every third."""
    import sqlalchemy as sa

    with engine.begin() as connection:
        scanners = []
        for number in range(1, STATIONS * GATES_PER_STATION + 1):
            scanners.append((number, "metro-1", f"gate-{number:03d}", '["transit"]', False))
        number = STATIONS * GATES_PER_STATION
        for venue in range(1, VENUES + 1):
            for desk in (1, 2):
                number += 1
                scanners.append((number, f"venue-{venue:03d}", f"desk-{desk}", '["venue"]', desk == 1))
        for clinic in range(1, CLINICS + 1):
            for desk in (1, 2):
                number += 1
                scanners.append((number, f"clinic-{clinic:02d}", f"desk-{desk}", '["clinic"]', True))
        connection.execute(
            sa.text(
                "INSERT INTO scanners (id, venue_id, device_id, scenes, key_hash, key_hint, created_at, attended) "
                "VALUES (:id, :venue, :device, CAST(:scenes AS json), :key_hash, "
                "'bench', :now, :attended)"
            ),
            [
                {"id": i, "venue": v, "device": d, "scenes": s, "now": now, "attended": a,
                 "key_hash": hashlib.sha256(f"bench-{i}".encode()).hexdigest()}
                for i, v, d, s, a in scanners
            ],
        )
        connection.execute(sa.text("SELECT setval('scanners_id_seq', :n)"), {"n": number})
        connection.execute(
            sa.text(
                "INSERT INTO scanner_health (scanner_id, last_upload_at, reported_at, keys_age, revocations_age, "
                "clock_offset, pending) SELECT id, :now, :now, 60 * (id % 50), 30 * (id % 7), (id % 5) - 2, id % 9 "
                "FROM scanners WHERE id % 3 = 0"
            ),
            {"now": now},
        )


def measure(args: argparse.Namespace) -> None:
    from sqlalchemy import event

    from codeservice import db, operators, usage_report
    from codeservice.models import Operator

    app = build_app(pg_url(args.pg_url, args.schema), args.keys_dir)
    day = args.end_day
    with app.app_context():
        session = db.session()
        if session.query(Operator).filter_by(username="bench").first() is None:
            operator, _ = operators.add_operator(session, "bench", [], now=datetime.now(UTC))
            operator.must_change_password = False
            session.commit()
        operator_id = session.query(Operator).filter_by(username="bench").one().id
        epoch = session.query(Operator).filter_by(username="bench").one().auth_epoch
        zone = app.config["TIMEZONE"]
    client = app.test_client()
    # A logged-in operator's cookie, made as the console makes it.
    with app.test_request_context("/console"):
        from flask import session as flask_session

        flask_session["operator"] = operator_id
        flask_session["epoch"] = epoch
        flask_session["login_at"] = int(time.time())
        serializer = app.session_interface.get_signing_serializer(app)
        value = serializer.dumps(dict(flask_session))
    client.set_cookie("codeservice_console", value)

    statements: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        statements.append((statement, parameters))

    pages = {
        "console, all venues": f"/console?day={day}",
        "console, metro-1": f"/console?day={day}&venue=metro-1",
        "console, venue-007": f"/console?day={day}&venue=venue-007",
    }
    print(f"\nday {day} ({zone}); {args.runs} runs each, after one warm-up")
    results: dict[str, list[float]] = {}
    for name, path in pages.items():
        response = client.get(path)
        assert response.status_code == 200, (path, response.status_code)
        times = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            response = client.get(path)
            times.append((time.perf_counter() - t0) * 1000)
            assert response.status_code == 200
        results[name] = times
    for name, _path, venues in (
        ("day report (CSV), all venues", None, None),
        ("day report (CSV), metro-1", None, ["metro-1"]),
        ("day report (CSV), venue-007", None, ["venue-007"]),
    ):
        times = []
        size = 0
        for run in range(args.runs + 1):
            with app.app_context():
                window = usage_report.day_window(day, zone)
                t0 = time.perf_counter()
                size = sum(len(chunk) for chunk in usage_report.csv_report(db.session(), window, venues, FIELDS))
                if run:
                    times.append((time.perf_counter() - t0) * 1000)
        results[f"{name} ({size / 1e6:.0f} MB)"] = times
    export = f"/console/export.csv?day={day}&venue=venue-007"
    times = []
    for run in range(args.runs + 1):
        t0 = time.perf_counter()
        response = client.get(export)
        body = response.get_data()
        if run:
            times.append((time.perf_counter() - t0) * 1000)
    results[f"GET /console/export.csv, venue-007 ({len(body) / 1e3:.0f} kB)"] = times
    for name, times in results.items():
        print(f"  {name:55s} {min(times):8.0f} - {max(times):8.0f} ms   ({', '.join(f'{t:.0f}' for t in times)})")

    if args.explain:
        with app.app_context():
            engine = db.engine()
            event.listen(engine, "before_cursor_execute", record)
            client.get(pages["console, all venues"])
            event.remove(engine, "before_cursor_execute", record)
            print("\nEXPLAIN (ANALYZE, BUFFERS) of each statement of the all-venues page:")
            with engine.connect() as connection:
                raw = connection.connection.driver_connection
                for statement, parameters in statements:
                    if not statement.lstrip().upper().startswith("SELECT"):
                        continue
                    with raw.cursor() as cursor:
                        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters)
                        plan = "\n".join(row[0] for row in cursor.fetchall())
                    print("\n--", re.sub(r"\s+", " ", statement)[:300])
                    print(plan)
                window = usage_report.day_window(day, zone)
                with raw.cursor() as cursor:
                    cursor.execute("SET LOCAL jit = off")  # as the report runs it
                for venues in (None, ["venue-007"]):
                    copy = usage_report._copy_statement(FIELDS, venues)
                    select = copy[len("COPY ("): copy.rindex(") TO STDOUT")]
                    params: dict[str, Any] = {"zone": zone, "start": window.start, "end": window.end}
                    if venues:
                        params["venues"] = venues
                    with raw.cursor() as cursor:
                        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + select, params)
                        print("\n-- the report's records (the COPY's query)" + (f" of {venues[0]}" if venues else ""))
                        print("\n".join(row[0] for row in cursor.fetchall()))
                raw.rollback()


FIELDS = ["department", "appointment_id", "station", "direction", "line", "fare_cents", "trip_id",
          "entry_station", "category", "party_size", "reservation_id", "capacity"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--end-day", type=date.fromisoformat, default=date(2026, 11, 30),
                        help="the last (local) day seeded, the one measured [2026-11-30]")
    parser.add_argument("--schema", default="console_bench")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL)
    parser.add_argument("--keys-dir", type=Path, default=Path("/tmp/console-bench-keys"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--measure-only", action="store_true")
    parser.add_argument("--resume", action="store_true", help="seed only the days the schema lacks (a run cut short)")
    parser.add_argument("--no-explain", dest="explain", action="store_false")
    args = parser.parse_args()
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", args.schema):
        parser.error("--schema: lower-case letters, digits and _")
    if not args.measure_only:
        seed(args)
    measure(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
