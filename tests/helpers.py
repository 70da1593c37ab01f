"""Shared test helpers: keys, tokens, registrations, scanners, the servers tests need.

Plain functions and constants; the fixtures built on them are in the conftest
files (tests/conftest.py for both halves, tests/service/conftest.py for the
service's). Tests import these from here, never from a conftest or another test.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import re
import secrets
import shutil
import subprocess
import threading
import time
import urllib.request
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from PIL import Image
from werkzeug.serving import WSGIRequestHandler, make_server

from verifiers.jose import b64url_decode, b64url_encode, jwk_from_public_key, kid_for
from verifiers.scenes import ENTRY_POINT_GROUP

if TYPE_CHECKING:
    from flask import Flask

TESTS = Path(__file__).parent
PROJECT = TESTS.parent
VECTORS = TESTS / "vectors"
NOW = 1_795_000_000  # a fixed clock: 2026-11-18T11:06:40Z
ISSUER = "urn:codeservice:dev"
ALL_SCENES = ["clinic", "transit", "venue"]


def require_servers() -> bool:
    """In CI a missing server is a failure, not a skip."""
    return os.environ.get("CODESERVICE_REQUIRE_SERVERS") == "1"


def skip_or_fail(reason: str) -> None:
    if require_servers():
        pytest.fail(f"{reason} (CODESERVICE_REQUIRE_SERVERS=1)")
    pytest.skip(reason)


@dataclass
class TestKey:
    """A private key for tests, its public JWK (with kid) and a raw signer."""

    __test__ = False
    alg: str
    private_key: Any
    jwk: dict[str, str]

    @property
    def kid(self) -> str:
        return self.jwk["kid"]

    def sign(self, signing_input: bytes) -> bytes:
        if self.alg == "EdDSA":
            return self.private_key.sign(signing_input)
        r, s = decode_dss_signature(self.private_key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def make_test_key(alg: str) -> TestKey:
    private_key = Ed25519PrivateKey.generate() if alg == "EdDSA" else ec.generate_private_key(ec.SECP256R1())
    jwk: dict[str, str] = jwk_from_public_key(private_key.public_key())
    jwk.update(kid=kid_for(jwk), alg=alg, use="sig")
    return TestKey(alg, private_key, jwk)


def b64json(value: Any) -> str:
    raw = value if isinstance(value, (bytes, str)) else json.dumps(value, separators=(",", ":"))
    return b64url_encode(raw.encode("utf-8") if isinstance(raw, str) else raw)


def default_claims(now: int = NOW, **overrides: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "q1w2e3r4t5y6u7i8",
        "iat": now,
        "exp": now + 60,
        "jti": b64url_encode(secrets.token_bytes(8)),
        "scp": list(ALL_SCENES),
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not DROP}


DROP = object()
"""Pass as a claim or header value to leave that member out."""
TokenFactory = Callable[..., str]
PG_URL = os.environ.get("CODESERVICE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def gb11643_id(body17: str) -> str:
    """A resident ID number: 17 digits and their GB 11643 check character."""
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    total = sum(int(d) * w for d, w in zip(body17, weights, strict=True))
    return body17 + "10X98765432"[total % 11]


DEMO_PASSWORD = "correct horse battery"


def registration(**overrides: Any) -> dict[str, Any]:
    """A valid registration body; a fresh phone and ID number each call."""
    body = {
        "name": "张三明",
        "id_type": "resident_id",
        "id_number": gb11643_id(f"310104{1990 + secrets.randbelow(10)}0101{secrets.randbelow(1000):03d}"),
        "phone": f"13{secrets.randbelow(10**9):09d}",
        "password": DEMO_PASSWORD,
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not DROP}


def new_keys_dir(directory: Path, alg: str = "EdDSA") -> Path:
    """The service's keys in ``directory``: the personal-data keys and a first signing key."""
    from codeservice.keystore import KeyStore
    from codeservice.pii import DataKeys

    DataKeys.create(directory)
    KeyStore(directory).init(alg)
    return directory


def add_scanner(
    runner: Any, *, venue: str = "v1", device: str = "d1", scenes: str = "clinic,transit,venue"
) -> tuple[int, str]:
    """``scanners add``: the scanner's id and its key (the last line of the output)."""
    result = runner.invoke(args=["scanners", "add", "--venue", venue, "--device", device, "--scenes", scenes])
    assert result.exit_code == 0, result.output
    match = re.match(r"Scanner (\d+):", result.output)
    assert match, result.output
    return int(match.group(1)), result.output.strip().splitlines()[-1]


def service_code(
    app: Any,
    keys_dir: Path,
    *,
    sub: str | None = None,
    scopes: tuple[str, ...] = ("clinic", "transit", "venue"),
    category: str | None = None,
    now: int | None = None,
    ttl: int = 60,
    issuer: str | None = None,
) -> str:
    """A code signed with the service's own signing key."""
    from codeservice.issuance import issue_code, new_code_id
    from codeservice.keystore import KeyStore

    return issue_code(
        KeyStore(keys_dir).signer(),
        sub=sub or new_code_id(),
        scopes=scopes,
        category=category,
        now=int(time.time()) if now is None else now,
        ttl=ttl,
        issuer=issuer or app.config["ISSUER"],
    )


# -- pages ------------------------------------------------------------------------

ZH = {"Accept-Language": "zh-CN,zh;q=0.9"}
EN = {"Accept-Language": "en-US,en;q=0.9,zh-CN;q=0.5"}
TAG = re.compile(r"<[a-zA-Z][^>]*>")
INLINE_HANDLER = re.compile(r"\son[a-z]+\s*=", re.IGNORECASE)
SCRIPT_TAG = re.compile(r"<script\b[^>]*>", re.IGNORECASE)
URL_ATTRIBUTE = re.compile(
    r"""\b(?:src|href|action|formaction|srcset|poster)\s*=\s*["']?\s*([^"'\s>]*)""", re.IGNORECASE
)


def html(response: Any) -> str:
    return response.get_data(as_text=True)


def assert_self_contained(page: str, where: str) -> None:
    """No inline script or handler (a strict CSP holds), nothing from outside the service."""
    for tag in SCRIPT_TAG.findall(page):
        assert re.search(r"\ssrc=", tag), f"inline <script> on {where}: {tag}"
    for tag in TAG.findall(page):
        assert not INLINE_HANDLER.search(tag), f"inline event handler on {where}: {tag}"
        assert "style=" not in tag, f"inline style on {where}: {tag}"
    for url in URL_ATTRIBUTE.findall(page):
        assert not re.match(r"(?:[a-z][a-z0-9+.-]*:)?//", url, re.IGNORECASE), f"external URL on {where}: {url}"
        assert not url.lower().startswith(("javascript:", "data:")), f"{url} on {where}"


# -- QR codes in SVG ---------------------------------------------------------------

SVG_NAMESPACE = "{http://www.w3.org/2000/svg}"
SVG_DARK_RUN = re.compile(r"M(\d+) (\d+)h(\d+)v1h-\3z")
SVG_PIXELS_PER_MODULE = 6


def svg_dark_runs(svg: str) -> tuple[int, list[tuple[int, int, int]]]:
    """The viewBox side and the (x, y, length) dark runs of the one path."""
    root = ET.fromstring(svg)
    min_x, min_y, width, height = (int(v) for v in root.get("viewBox", "").split())
    assert (min_x, min_y) == (0, 0) and width == height
    (path,) = root.iter(f"{SVG_NAMESPACE}path")
    commands = path.get("d", "")
    runs = [(int(x), int(y), int(n)) for x, y, n in SVG_DARK_RUN.findall(commands)]
    assert SVG_DARK_RUN.sub("", commands) == ""  # nothing but dark runs
    return width, runs


def rasterize_svg(svg: str) -> Image.Image:
    side, runs = svg_dark_runs(svg)
    scale = SVG_PIXELS_PER_MODULE
    image = Image.new("L", (side * scale, side * scale), 255)
    for x, y, length in runs:
        image.paste(0, (x * scale, y * scale, (x + length) * scale, (y + 1) * scale))
    return image


# -- printed cards (Debian's poppler-utils, zxing-cpp) ----------------------------


def poppler(tool: str, *args: str | Path) -> str:
    if shutil.which(tool) is None:
        skip_or_fail(f"{tool} (Debian's poppler-utils) is not installed")
    return subprocess.run([tool, *map(str, args)], capture_output=True, text=True, check=True, timeout=60).stdout


def rasterise(pdf: Path, dpi: int, *, page: int = 1) -> Image.Image:
    """One page of the PDF as a grayscale image, as pdftoppm draws it at ``dpi``."""
    prefix = pdf.with_name(f"{pdf.stem}-{dpi}dpi-p{page}")
    poppler("pdftoppm", "-r", str(dpi), "-f", str(page), "-l", str(page), "-singlefile", "-png", pdf, prefix)
    with Image.open(prefix.with_suffix(".png")) as image:
        return image.convert("L")


def decoded_texts(image: Image.Image) -> list[str]:
    import zxingcpp  # only the tests that read printed QR codes need it

    return [barcode.text for barcode in zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)]


# -- usage uploads -----------------------------------------------------------------

SUB = "q1w2e3r4t5y6u7i8"


def metro_scanner_key(
    runner: Any, venue: str = "metro-1", device: str = "gate-7", scenes: str = "transit,venue,clinic"
) -> str:
    """A new scanner's key (the last line of ``scanners add``)."""
    return add_scanner(runner, venue=venue, device=device, scenes=scenes)[1]


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def record(ago: timedelta = timedelta(hours=1), **overrides: Any) -> dict[str, Any]:
    """A valid offline usage record (an accepted transit entry) decided ``ago``."""
    body = {
        "id": str(uuid.uuid4()),
        "scene": "transit",
        "venue_id": "metro-1",
        "device_id": "gate-7",
        "sub": SUB,
        "jti": base64.urlsafe_b64encode(secrets.token_bytes(8)).rstrip(b"=").decode(),
        "decided_at": iso(datetime.now(UTC) - ago),
        "ok": True,
        "code": "accepted",
        "detail": {"station": "人民广场", "direction": "in", "line": "1", "fare_cents": None, "trip_id": "x"},
    }
    body.update(overrides)
    return body


def upload(client: Any, key: str | None, records: Any, *, raw: bytes | None = None) -> Any:
    """POST a batch; the body is encoded here (ASCII-escaped), so any Python string goes through."""
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    data = raw if raw is not None else json.dumps({"records": records}).encode("ascii")
    return client.post("/api/v1/usage", data=data, content_type="application/json", headers=headers)


def accepted(response: Any) -> tuple[int, int]:
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert set(body) == {"accepted", "duplicates"}
    return body["accepted"], body["duplicates"]


def row_count(app: Any) -> int:
    from sqlalchemy import func, select

    from codeservice import db
    from codeservice.models import UsageRecord

    with app.app_context():
        return db.session().scalar(select(func.count()).select_from(UsageRecord))


def error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True)[:300])
    assert response.mimetype == "application/json"
    body = response.get_json()["error"]
    assert body["code"] == code, body
    return body


def code_of(client: Any) -> str:
    """A fresh code of the logged-in resident."""
    response = client.get("/api/v1/code")
    assert response.status_code == 200, response.get_json()
    return response.get_json()["token"]


def sub_of(token: str) -> str:
    return json.loads(b64url_decode(token.split(".")[1]))["sub"]


# -- the OpenAPI document ----------------------------------------------------------

IMPLICIT_METHODS = {"HEAD", "OPTIONS"}  # Flask adds them to every GET / every route
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
PAGE_BLUEPRINTS = {"web", "web.scanner", "console"}  # HTML pages, their static files, /scanner's calls: not JSON API
CONVERTER = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


def json_routes(app: Flask) -> set[tuple[str, str]]:
    """(OpenAPI path, upper-case method) of every route outside the page blueprints."""
    routes = set()
    for rule in app.url_map.iter_rules():
        blueprint = rule.endpoint.rpartition(".")[0]
        if blueprint in PAGE_BLUEPRINTS or rule.endpoint == "static":
            continue
        path = CONVERTER.sub(r"{\1}", rule.rule)
        routes.update((path, method) for method in (rule.methods or set()) - IMPLICIT_METHODS)
    return routes


def documented_operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method in HTTP_METHODS:
            if method in item:
                yield path, method.upper(), item[method]


def resolve(document: dict[str, Any], node: Any) -> Any:
    """``node``, or what its ``$ref`` points to (followed to the end)."""
    while isinstance(node, dict) and "$ref" in node:
        node = pointer(document, node["$ref"])
    return node


def pointer(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), f"only local references are used: {ref}"
    node: Any = document
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"unresolved $ref {ref}"
        node = node[part]
    return node


def error_codes(document: dict[str, Any], response: Any) -> set[str]:
    """The error codes a (documented) error response lists in its schema."""
    response = resolve(document, response)
    schema = resolve(document, response["content"]["application/json"]["schema"])
    codes: set[str] = set()
    for part in schema.get("allOf", [schema]):
        code = resolve(document, part).get("properties", {}).get("error", {}).get("properties", {}).get("code", {})
        codes.update(code.get("enum", []))
    return codes


def validate(document: dict[str, Any], schema: Any, value: Any, where: str = "$") -> list[str]:
    """Problems of ``value`` against ``schema`` (the JSON Schema subset the document uses)."""
    schema = resolve(document, schema)
    problems: list[str] = []
    for part in schema.get("allOf", []):
        problems += validate(document, part, value, where)
    if "const" in schema and value != schema["const"]:
        problems.append(f"{where}: {value!r} is not {schema['const']!r}")
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{where}: {value!r} is not one of {schema['enum']}")
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_is_type(value, name) for name in types):
            return [*problems, f"{where}: {value!r} is not of type {schema['type']}"]
    if isinstance(value, str) and "pattern" in schema and not re.search(schema["pattern"], value):
        problems.append(f"{where}: {value!r} does not match {schema['pattern']}")
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        problems += [f"{where}: missing {name!r}" for name in schema.get("required", []) if name not in value]
        for name, item in value.items():
            if name in properties:
                problems += validate(document, properties[name], item, f"{where}.{name}")
            elif schema.get("additionalProperties", True) is False:
                problems.append(f"{where}: unexpected member {name!r}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            problems += validate(document, schema["items"], item, f"{where}[{i}]")
    return problems


def _is_type(value: Any, name: str) -> bool:
    if name == "integer":
        return type(value) is int
    if name == "number":
        return type(value) in (int, float)
    return isinstance(value, {"string": str, "object": dict, "array": list, "boolean": bool, "null": type(None)}[name])


def response_schema(document: dict[str, Any], path: str, method: str, status: int) -> Any:
    response = resolve(document, document["paths"][path][method]["responses"][str(status)])
    (media,) = response["content"].values()
    return media["schema"]


PROVOKED_BY_CONFIGURATION = {
    "rate_limited": "test_over_a_rate_limit_the_answer_is_the_documented_429",
    "database_unavailable": "test_without_the_database_the_answer_is_the_documented_503",
}
"""The codes only a configuration produces (rate limits on, no database), and the test_openapi.py test
that provokes each: test_error_shape.py counts them as provoked."""


# -- scenes installed as plug-ins ----------------------------------------------------

PLUGIN_EXAMPLE = TESTS / "plugin_example"
PLUGIN_MODULES = ["library_scene"]


def write_distribution(site: Path, name: str, scenes: dict[str, str], version: str = "0.1.0") -> Path:
    """What an installer leaves behind: ``<name>-<version>.dist-info`` with the entry points."""
    dist_info = site / f"{re.sub(r'[-_.]+', '_', name).lower()}-{version}.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = [f"[{ENTRY_POINT_GROUP}]", *(f"{scene} = {target}" for scene, target in scenes.items())]
    (dist_info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    return dist_info


def browser_config(folder: Path, keys_dir: Path, **settings: Any) -> dict[str, Any]:
    """A browser test's service: a real SQLite file in ``folder``, ``keys_dir``'s keys, development
    cookies (plain http on loopback), no rate limits; ``settings`` added or overriding."""
    return {
        "DATABASE_URL": f"sqlite:///{folder / 'service.db'}",
        "KEYS_DIR": str(keys_dir),
        "ENV": "development",
        "RATE_LIMITS": "off",
        **settings,
    }


@contextlib.contextmanager
def served_app(config: dict[str, Any], install: Callable[[Any], Any] | None = None) -> Iterator[dict[str, Any]]:
    """The whole service made from ``config`` (after ``install(app)``: a test's changes to it), its schema
    migrated, served by threads on a free loopback port: yields ``{"url", "app"}``; stopped afterwards."""
    from werkzeug.serving import make_server

    from codeservice import create_app, db

    app = create_app(config)
    if install is not None:
        install(app)
    with app.app_context():
        db.init_db()
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, name="codeservice-test-server", daemon=True)
    thread.start()
    try:
        yield {"url": f"http://127.0.0.1:{httpd.server_port}", "app": app}
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)
        with app.app_context():
            db.engine().dispose()


# -- a phone in Chromium ------------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PHONE = {"width": 360, "height": 640}


def api_register(base_url: str) -> dict[str, Any]:
    body = registration()
    request = urllib.request.Request(
        f"{base_url}/api/v1/residents",
        data=json.dumps(body).encode("utf-8"),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 201
    return body


def log_in(page: Any, phone_number: str) -> None:
    page.goto("/login")
    page.fill("#phone", phone_number)
    page.fill("#password", DEMO_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/code")


def read_qr(page: Any) -> str:
    """Photograph the QR on screen and decode it as a scanner would."""
    import zxingcpp
    from PIL import Image

    png = page.locator("#qr svg").screenshot()
    # QR only: searching every format, zxing-cpp now and then also "finds" a
    # 1D barcode inside a QR code's modules.
    results = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)), formats=zxingcpp.BarcodeFormat.QRCode)
    assert len(results) == 1, f"{len(results)} barcodes decoded from the screen"
    return results[0].text


def ago(**delta: float) -> timedelta:
    return timedelta(**delta)


# -- the browser scanner (/scanner) ---------------------------------------------------

CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')
SCANNER_CSRF = re.compile(r'name="csrf-token" content="([^"]+)"')


def scanner_sign_in(client: Any, key: str) -> str:
    """Sign the test client in at /scanner with ``key``; the scanner session's CSRF token."""
    page = client.get("/scanner")
    match = CSRF_FIELD.search(page.get_data(as_text=True))
    assert match, page.get_data(as_text=True)[:300]
    response = client.post("/scanner/session", data={"key": key, "csrf_token": match.group(1)})
    assert response.status_code == 303, response.get_data(as_text=True)[:300]
    scanning = client.get("/scanner")
    token = SCANNER_CSRF.search(scanning.get_data(as_text=True))
    assert token, scanning.get_data(as_text=True)[:300]
    return token.group(1)


def scanner_verify(client: Any, csrf: str | None, token: str, scene: str, context: Any = None, **headers: str) -> Any:
    """``POST /scanner/verify`` as the page sends it."""
    if csrf is not None:
        headers["X-CSRF-Token"] = csrf
    body = {"token": token, "scene": scene, "context": context if context is not None else {}}
    return client.post("/scanner/verify", json=body, headers=headers)


# -- the operator console ----------------------------------------------------------------

CONSOLE_PASSWORD = "console-pass-2026-q4"


def add_operator(runner: Any, username: str, *venues: str) -> str:
    """``operators add``: the first password (the last line of the output)."""
    arguments = ["operators", "add", "--username", username]
    for venue in venues:
        arguments += ["--venue", venue]
    result = runner.invoke(args=arguments)
    assert result.exit_code == 0, result.output
    return result.output.strip().splitlines()[-1]


def console_form(client: Any, path: str, fields: dict[str, str]) -> Any:
    """GET the form at ``path`` for its CSRF token, then POST ``fields`` with it."""
    page = client.get(path).get_data(as_text=True)
    match = CSRF_FIELD.search(page)
    assert match, page[:500]
    return client.post(path, data={"csrf_token": match.group(1), **fields})


def console_log_in(client: Any, username: str, first_password: str, password: str = CONSOLE_PASSWORD) -> Any:
    """Log in to the console with the first password and set ``password``; the client, logged in."""
    response = console_form(client, "/console/login", {"username": username, "password": first_password})
    assert response.status_code == 303 and response.headers["Location"].endswith("/console/password"), response
    response = console_form(
        client, "/console/password", {"current_password": first_password, "new_password": password}
    )
    assert response.status_code == 303 and response.headers["Location"].endswith("/console"), response
    return client


def local_moment(day: date, hour: int, minute: int, zone: str = "Asia/Shanghai") -> datetime:
    """``day`` at ``hour:minute`` in ``zone``, as an aware datetime."""
    from zoneinfo import ZoneInfo

    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=ZoneInfo(zone))


class LiveServer:
    """The app (or a WSGI wrapper of it) served by threads on a loopback port that survives a restart."""

    def __init__(self, app: Any, handler: type[WSGIRequestHandler] | None = None) -> None:
        self.app, self.port, self.handler = app, 0, handler
        self.start()

    def start(self) -> None:
        self.server = make_server("127.0.0.1", self.port, self.app, threaded=True, request_handler=self.handler)
        self.port = self.server.server_port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


# -- PostgreSQL's wire ---------------------------------------------------------------------


class LibpqTrace:
    """libpq's trace of every connection an engine opens once attached, in one file, read back as round trips
    (one ReadyForQuery from the server each) and the statements sent (Query and Parse messages), in order."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file = open(path, "w")
        self.offset = 0

    def attach(self, engine: Any) -> None:
        from sqlalchemy import event

        event.listen(engine, "connect", self._trace)

    def detach(self, engine: Any) -> None:
        from sqlalchemy import event

        event.remove(engine, "connect", self._trace)

    def _trace(self, dbapi_connection: Any, _record: Any) -> None:
        from psycopg import pq

        dbapi_connection.pgconn.trace(self.file.fileno())
        dbapi_connection.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)

    def since_last(self) -> tuple[int, list[str]]:
        """Round trips since the last call, and the statements sent meanwhile."""
        self.file.flush()
        with open(self.path) as trace:
            trace.seek(self.offset)
            lines = trace.read().splitlines()
            self.offset = trace.tell()
        trips, sent = 0, []
        for fields in (line.split("\t") for line in lines):
            if len(fields) > 2 and fields[0] == "B" and fields[2] == "ReadyForQuery":
                trips += 1
            elif len(fields) > 3 and fields[0] == "F" and fields[2] in ("Query", "Parse"):
                sent.append(fields[3].strip())
        return trips, sent

    def close(self) -> None:
        self.file.close()
