"""``flask --app codeservice ...`` commands: thin wrappers over plain functions."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext

from . import db, identity, operators, paper, residents, retention, scanners, usage_report
from .context import data_keys, key_store, scene_registry
from .errors import ClientError, ConfigError, KeyStoreError
from .keystore import ALGORITHMS, KeyInfo, KeyStore
from .pii import DATA_KEY_FILE, DataKeys

keys_cli = AppGroup("keys", help="Manage the keys that sign residents' codes.")


def init_app(app: Flask) -> None:
    app.cli.add_command(keys_cli)
    app.cli.add_command(init_db_command)
    app.cli.add_command(residents_cli)
    app.cli.add_command(scanners_cli)
    app.cli.add_command(usage_cli)
    app.cli.add_command(operators_cli)


@click.command("init-db")
@with_appcontext
def init_db_command() -> None:
    """Create or upgrade the database schema; safe to repeat."""
    db.init_db()
    click.echo(f"Database ready: {db.engine().url.render_as_string(hide_password=True)}")


def _store() -> KeyStore:
    return KeyStore.from_config(current_app.config)


@contextmanager
def _clean_errors() -> Iterator[None]:
    """A key store problem is the operator's to fix: one line, no traceback."""
    try:
        yield
    except KeyStoreError as exc:
        raise click.ClickException(exc.message) from None


def _when(ts: int | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


ALG = click.Choice(ALGORITHMS, case_sensitive=False)


@keys_cli.command("init")
@click.option("--alg", type=ALG, default=None, help="Signing algorithm [default: SIGNING_ALG, EdDSA].")
def init_command(alg: str | None) -> None:
    """Create the first signing key; do nothing if there is one."""
    store = _store()
    with _clean_errors():
        if DataKeys.create(store.directory):
            click.echo(f"Created the personal-data key {store.directory / DATA_KEY_FILE}.")
        info = store.init(alg or current_app.config["SIGNING_ALG"])
        if info is None:
            current = next(k for k in store.keys() if k.state == "signing")
            click.echo(
                f"A signing key already exists in {store.directory}: "
                f"{current.kid} ({current.alg}); nothing to do."
            )
            return
    click.echo(f"Created signing key {info.kid} ({info.alg}) in {store.directory}.")


@keys_cli.command("rotate")
@click.option("--alg", type=ALG, default=None, help="Signing algorithm [default: the current key's].")
def rotate_command(alg: str | None) -> None:
    """Make a new key the signing key.

    The previous key stops signing and stays published while codes it signed
    may still be valid, plus KEY_PUBLISH_GRACE seconds.
    """
    store = _store()
    with _clean_errors():
        before = {k.kid for k in store.keys() if k.state == "signing"}
        info = store.rotate(alg)
        previous = [k for k in store.keys(info.created_at) if k.kid in before]
    click.echo(f"New signing key {info.kid} ({info.alg}).")
    for key in previous:
        click.echo(
            f"The previous key {key.kid} no longer signs; it stays published until "
            f"{_when(key.published_until)} for the codes it signed."
        )


@keys_cli.command("list")
def list_command() -> None:
    """List the keys and their state (no private material)."""
    store = _store()
    with _clean_errors():
        keys = store.keys()
    if not keys:
        click.echo(f"No keys in {store.directory}; run `flask --app codeservice keys init`.")
        return
    click.echo(f"Keys in {store.directory}:")
    rows = [("KID", "ALG", "STATE", "CREATED", "PUBLISHED UNTIL")]
    rows += [_row(k) for k in keys]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def _row(key: KeyInfo) -> tuple[str, str, str, str, str]:
    labels = {"signing": "(while signing)", "retired": "(withdrawn)"}
    until = labels.get(key.state) or _when(key.published_until)
    return (key.kid, key.alg, key.state, _when(key.created_at), until)


# A kid is base64url: one in 64 starts with "-", which is a KID here, not an unknown option.
@keys_cli.command("retire", context_settings={"ignore_unknown_options": True})
@click.argument("kid")
def retire_command(kid: str) -> None:
    """Unpublish a key at once (e.g. if it leaked).

    Codes it signed stop verifying once verifiers refresh their key set. The
    signing key cannot be retired: rotate first.
    """
    store = _store()
    with _clean_errors():
        info = store.retire(kid)
    click.echo(f"Retired key {info.kid}: it is no longer published; codes it signed stop verifying.")


# -- residents -----------------------------------------------------------------

residents_cli = AppGroup("residents", help="Manage residents.")
CATEGORY_CHOICES = click.Choice([*residents.ADMIN_CATEGORIES, "none"], case_sensitive=False)


@residents_cli.command("set-category")
@click.option("--phone", required=True, help="The resident's phone number.")
@click.option("--category", type=CATEGORY_CHOICES, required=True, help="The concession category; none clears it.")
def set_category_command(phone: str, category: str) -> None:
    """Set the concession category of the resident with this phone.

    senior is not set here: it follows from a resident ID's birth date.
    """
    chosen = None if category.lower() == "none" else category.lower()
    try:
        resident = residents.set_category(db.session(), data_keys(), phone, chosen)
    except (ClientError, KeyStoreError) as exc:
        raise click.ClickException(exc.message) from None
    number = residents.masked_phone(identity.normalize_phone(phone))
    effective = residents.code_category(
        resident, int(time.time()), current_app.config.get("SENIOR_AGE", residents.DEFAULT_SENIOR_AGE)
    )
    click.echo(
        f"Resident {resident.name} ({number}): category {chosen or 'none'}; "
        f"codes now carry {effective or 'no category'}."
    )


@residents_cli.command("revoke")
@click.option("--phone", required=True, help="The resident's phone number.")
def revoke_command(phone: str) -> None:
    """Revoke the resident with this phone.

    Their codes stop being issued, and their code id joins the revocation
    list that scanners fetch (GET /api/v1/revocations). Safe to repeat.
    """
    try:
        resident = residents.revoke(db.session(), data_keys(), phone, now=datetime.now(UTC))
    except (ClientError, KeyStoreError) as exc:
        raise click.ClickException(exc.message) from None
    number = residents.masked_phone(identity.normalize_phone(phone))
    revoked_at = resident.revoked_at or datetime.now(UTC)
    since = (revoked_at if revoked_at.tzinfo else revoked_at.replace(tzinfo=UTC)).astimezone(UTC)
    click.echo(
        f"Resident {resident.name} ({number}) is revoked since {since:%Y-%m-%dT%H:%M:%SZ}: "
        "no codes are issued to them, and their code id is on the revocation list."
    )


@residents_cli.command("reassign")
@click.option("--id-type", type=click.Choice(identity.ID_TYPES), default="resident_id", show_default=True,
              help="The identity document's type.")
@click.option("--id-number", required=True, help="The document's number, as on the document shown at the desk.")
@click.option("--phone", required=True, help="The owner's phone number: the new account's.")
@click.option("--name", required=True, help="The owner's name, as on the document.")
@click.option("--staff", required=True, help="Who checked the document in person (named in the audit log).")
@click.password_option("--password", prompt="The owner's password for the new account (the owner types it)",
                       help="Asked for, hidden and twice, when not given: let the owner type it.")
def reassign_command(id_type: str, id_number: str, phone: str, name: str, staff: str, password: str) -> None:
    """Give an identity document to its owner after an in-person ID check.

    The account that holds it (someone registered the owner's ID number) is
    closed: its sessions end, no code is issued to it and its code id joins
    the revocation list. A new account is opened for the owner's phone, with
    the password the owner types. Logged with --staff, never the ID number.
    """
    try:
        outcome = residents.reassign(
            db.session(), data_keys(), id_type=id_type, id_number=id_number, phone=phone, name=name,
            password=password, staff=staff, now=datetime.now(UTC),
        )
    except (ClientError, KeyStoreError) as exc:
        raise click.ClickException(exc.message) from None
    number = residents.masked_phone(identity.normalize_phone(phone))
    click.echo(
        f"Reassigned by {' '.join(staff.split())}: the {id_type} document is now held by resident "
        f"{outcome.opened.id} ({outcome.opened.name}, {number}), who logs in with that phone and the password "
        f"just typed. Resident {outcome.closed.id} ({outcome.closed.name}) is closed: its sessions ended, no codes "
        "are issued to it, and its code id is on the revocation list."
    )


@residents_cli.command("paper")
@click.option("--phone", required=True, help="The resident's phone number.")
@click.option("--days", type=click.IntRange(1, paper.MAX_DAYS), default=paper.DEFAULT_DAYS, show_default=True,
              help=f"How many days the paper code works (1 to {paper.MAX_DAYS}).")
@click.option("--out", "out", type=click.Path(dir_okay=False, writable=True),
              help="Where to write the card to print (a PDF, ID-1 card size); needed unless --revoke.")
@click.option("--revoke", is_flag=True,
              help="Revoke the resident's paper code instead (a lost card, or one no longer needed).")
def paper_command(phone: str, days: int, out: str | None, revoke: bool) -> None:
    """Issue a paper code for a resident without a smartphone, and its printable card.

    The card holds the QR, the masked name, the birth month and day (resident
    ID holders) and the ID number's last four characters, for staff to compare
    with the ID card; only staffed scanners (scanners add --attended) accept
    it. Issuing another revokes the resident's previous paper code. The
    code's text (RSP1:...) is printed alone on the last line. With --revoke,
    the resident's paper code is revoked and no card is issued.
    """
    if revoke:
        _revoke_paper(phone)
        return
    if out is None:
        raise click.UsageError("--out is needed to issue a card (or --revoke to revoke one)")
    config = current_app.config
    card = Path(out)
    existed = card.exists()
    try:  # before anything is issued: a card that cannot be written issues nothing
        card.open("ab").close()
    except OSError as exc:
        raise click.ClickException(f"the card cannot be written to {out}: {exc.strerror or exc}") from None
    try:
        code = paper.issue_paper_code(
            db.session(), data_keys(), key_store().signer(), phone=phone, days=days,
            scopes=config["ISSUED_SCOPES"], issuer=config["ISSUER"], senior_age=config["SENIOR_AGE"],
            now=datetime.now(UTC),
        )
    except (ClientError, KeyStoreError, ConfigError, ValueError) as exc:  # ValueError: a code the card cannot hold
        if not existed:
            card.unlink(missing_ok=True)
        raise click.ClickException(getattr(exc, "message", None) or str(exc)) from None
    card.write_bytes(code.card)
    number = residents.masked_phone(identity.normalize_phone(phone))
    click.echo(
        f"Paper code {code.cti} for resident {code.hint['n']} ({number}), valid until {_when(code.expires_at)}; "
        f"card written to {out} (serial {code.cti})."
    )
    for cti in code.replaced:
        click.echo(f"The previous paper code {cti} is revoked.")
    click.echo("The code follows, alone on the last line:")
    click.echo(code.text)


def _revoke_paper(phone: str) -> None:
    try:
        revoked = paper.revoke_paper_codes(db.session(), data_keys(), phone=phone, now=datetime.now(UTC))
    except (ClientError, KeyStoreError) as exc:
        raise click.ClickException(exc.message) from None
    number = residents.masked_phone(identity.normalize_phone(phone))
    if not revoked:
        click.echo(f"The resident {number} has no live paper code: nothing revoked.")
    for cti in revoked:
        click.echo(f"Paper code {cti} of {number} is revoked: scanners refuse it once they have synced.")


# -- scanners ------------------------------------------------------------------

scanners_cli = AppGroup("scanners", help="Manage venue scanners' keys.")


@scanners_cli.command("add")
@click.option("--venue", required=True, help="The venue the scanner belongs to.")
@click.option("--device", required=True, help="The device's id within the venue.")
@click.option("--scenes", required=True, help="Comma-separated scenes it may verify, e.g. transit,venue.")
@click.option("--attended", is_flag=True, help="A staffed scanner (someone checks the ID card): accepts paper codes.")
def scanners_add_command(venue: str, device: str, scenes: str, attended: bool) -> None:
    """Create a scanner key; it is printed once, alone on the last line."""
    try:
        scanner, key = scanners.add_scanner(
            db.session(),
            venue_id=venue,
            device_id=device,
            scenes=scenes.split(","),
            installed=scene_registry().names(),
            now=datetime.now(UTC),
            attended=attended,
        )
    except ClientError as exc:
        raise click.ClickException(exc.message) from None
    staffed = ", staffed (accepts paper codes)" if scanner.attended else ""
    click.echo(
        f"Scanner {scanner.id}: venue {scanner.venue_id}, device {scanner.device_id}, "
        f"scenes {','.join(scanner.scenes)}{staffed}."
    )
    click.echo("Its key follows; it is shown only now (only its hash is stored):")
    click.echo(key)


@scanners_cli.command("list")
def scanners_list_command() -> None:
    """List scanners (never their keys)."""
    rows = [("ID", "VENUE", "DEVICE", "SCENES", "STAFFED", "KEY", "STATE")]
    for scanner in scanners.list_scanners(db.session()):
        state = "revoked" if scanner.revoked_at else "active"
        staffed = "yes" if scanner.attended else "no"
        rows.append(
            (str(scanner.id), scanner.venue_id, scanner.device_id, ",".join(scanner.scenes), staffed,
             scanner.key_hint + "…", state)
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


@scanners_cli.command("revoke")
@click.argument("scanner_id", type=int)
def scanners_revoke_command(scanner_id: int) -> None:
    """Revoke a scanner's key at once."""
    try:
        scanner = scanners.revoke_scanner(db.session(), scanner_id, now=datetime.now(UTC))
    except ClientError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"Scanner {scanner.id} ({scanner.venue_id}/{scanner.device_id}) is revoked.")


# -- usage ---------------------------------------------------------------------

usage_cli = AppGroup("usage", help="Manage the usage records.")


class Age(click.ParamType):  # type: ignore[type-arg]  # generic only in newer clicks: not subscripted
    """``180d`` (days) or ``12h`` (hours)."""

    name = "age"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> object:
        try:
            return retention.parse_age(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


@usage_cli.command("prune")
@click.option("--older-than", "older_than", type=Age(), required=True, help="Age, in days (180d) or hours (12h).")
def usage_prune_command(older_than: timedelta) -> None:
    """Delete the usage records decided longer ago than --older-than."""
    now = datetime.now(UTC)
    removed = retention.prune_usage(db.session(), older_than, now)
    click.echo(f"Removed {removed} usage records decided before {now - older_than:%Y-%m-%dT%H:%M:%SZ}.")


@usage_cli.command("report")
@click.option("--day", required=True, help="The local day, YYYY-MM-DD (in CODESERVICE_TIMEZONE).")
@click.option("--venue", default=None, help="Only this venue's records [default: every venue].")
@click.option("--format", "output_format", type=click.Choice(["csv", "json"]), default="csv", show_default=True)
def usage_report_command(day: str, venue: str | None, output_format: str) -> None:
    """The day's usage records and the transit clearing summary, on standard output.

    CSV: the records (a header row, then one row each), a blank row, then the
    clearing (per line and station: entries, trips, fares in cents, concession
    trips by category); UTF-8 with a byte order mark, for spreadsheets. JSON:
    one object with "records" and "clearing". A day without records is an
    empty report.
    """
    try:
        when = usage_report.parse_day(day)
    except ClientError as exc:
        raise click.BadParameter(f"{day!r}: {exc.message}", param_hint="--day") from None
    window = usage_report.day_window(when, current_app.config["TIMEZONE"])
    registry = scene_registry()
    fields = usage_report.detail_columns(
        [[field.name for field in registry.usage_fields(name)] for name in registry.names()]
    )
    venues = [venue] if venue else None
    session = db.session()
    chunks = (
        usage_report.csv_report(session, window, venues, fields)
        if output_format == "csv"
        else usage_report.json_report(session, window, venues, fields)
    )
    for chunk in chunks:
        click.echo(chunk.encode("utf-8"), nl=False)  # bytes: UTF-8 whatever the locale


# -- operators -----------------------------------------------------------------

operators_cli = AppGroup("operators", help="Manage the operator console's accounts.")


@operators_cli.command("add")
@click.option("--username", required=True, help="The operator's username (a-z, 0-9, '.', '_', '-').")
@click.option("--venue", "venues", multiple=True, help="A venue the operator sees (repeat); none: every venue.")
def operators_add_command(username: str, venues: tuple[str, ...]) -> None:
    """Create an operator; the first password is printed once, alone on the last line, to change at first login."""
    try:
        operator, password = operators.add_operator(db.session(), username, venues, now=datetime.now(UTC))
    except ClientError as exc:
        raise click.ClickException(exc.message) from None
    seen = ", ".join(operator.venues) if operator.venues else "every venue"
    click.echo(f"Operator {operator.username}: sees {seen}; log in at /console/login.")
    click.echo("The first password follows; it is shown only now and must be changed at the first login:")
    click.echo(password)


@operators_cli.command("list")
def operators_list_command() -> None:
    """List the operators and the venues each sees (never a password)."""
    rows = [("USERNAME", "VENUES", "PASSWORD", "CREATED")]
    for operator in operators.list_operators(db.session()):
        rows.append(
            (operator.username, ",".join(operator.venues) or "(all)",
             "first (to change)" if operator.must_change_password else "set",
             operator.created_at.strftime("%Y-%m-%d"))
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


@operators_cli.command("remove")
@click.argument("username")
def operators_remove_command(username: str) -> None:
    """Delete an operator's account; their sessions end."""
    try:
        operators.remove_operator(db.session(), username)
    except ClientError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"Operator {username.strip().lower()} removed.")
