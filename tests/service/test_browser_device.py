"""The phone side of device codes (contract sections 4 and 9) in a real browser.

Chromium (Playwright) at 360x640 against the whole service: the page makes
a non-extractable P-256 key, enrols it, and shows a device code it makes
itself every 30 s; offline, /code comes from the service worker and still
shows one. Each code on screen is photographed, decoded with zxing-cpp and
checked by the library against the served JWKS, as a scanner would.

The page talks to the service's real device endpoints (POST
/api/v1/devices, POST /api/v1/devices/<id>/credential, GET
/api/v1/me/devices, DELETE /api/v1/me/devices/<id>); what they stored is
read back from the database (``devices_of``). A withdrawn phone's codes are
refused as ``revoked`` by an offline verifier once it has synced with the
running service.

The encoders of static/rsd.js are also run in the page on fixed inputs and
compared byte for byte with verifiers' CBOR, Base45 and device_code.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import PHONE, api_register, browser_config, log_in, read_qr, served_app

from verifiers import KeySet, cbor
from verifiers.base45 import b45decode, b45encode
from verifiers.cose import parse_sign1, sig_structure
from verifiers.jose import b64url_decode
from verifiers.offline_codes import check_offline_code, device_code
from verifiers.tokens import VerificationRules

PAGE_CLOCK_OFF_S = 600
STATE = "#code-app[data-device-state='{}']"


def devices_of(server: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The enrolled devices, oldest first, as the service stored them: id -> sub, jwk, active."""
    from sqlalchemy import select

    from codeservice import db
    from codeservice.models import Device, Resident

    with server["app"].app_context():
        rows = db.session().execute(
            select(Device, Resident.code_id)
            .join(Resident, Resident.id == Device.resident_id)
            .order_by(Device.created_at)
        )
        return {
            device.id: {
                "device_id": device.id,
                "sub": code_id,
                "jwk": device.public_key,
                "active": device.withdrawn_at is None,
            }
            for device, code_id in rows
        }


@contextlib.contextmanager
def serving(
    tmp_path: Path, keys_dir: Path, install: Callable[[Any], Any] = lambda app: None
) -> Iterator[dict[str, Any]]:
    """The whole service, after ``install(app)`` (a test's changes to it), on a free loopback port."""
    with served_app(browser_config(tmp_path, keys_dir), install) as running:
        yield running


@pytest.fixture
def server(tmp_path: Path, keys_dir: Path) -> Iterator[dict[str, Any]]:
    """The whole service, with its device endpoints."""
    with serving(tmp_path, keys_dir) as running:
        yield running


def new_phone(
    browser: Any, server: dict[str, Any], clock_at: float | None = None
) -> tuple[Any, Any, list[str]]:
    """A browser context (a phone), its page and its console errors; ``clock_at``: install a page clock."""
    context = browser.new_context(
        viewport=PHONE, base_url=server["url"], locale="zh-CN"
    )
    if clock_at is not None:
        context.clock.install(time=clock_at)
    page = context.new_page()
    errors: list[str] = []
    page.on(
        "console",
        lambda message: (
            errors.append(message.text) if message.type == "error" else None
        ),
    )
    page.on("pageerror", lambda error: errors.append(str(error)))
    return context, page, errors


def keys_of(server: dict[str, Any]) -> KeySet:
    return KeySet.from_jwks(f"{server['url']}/.well-known/jwks.json")


def check(server: dict[str, Any], text: str, now: float | None = None) -> Any:
    """Rules 1-5 of section 9 for ``text``, by the library, against the served key set."""
    rules = VerificationRules(issuer=server["app"].config["ISSUER"])
    return check_offline_code(
        text, keys_of(server), rules, time.time() if now is None else now
    )


def synced_verifier(server: dict[str, Any]) -> Any:
    """An offline verifier of a clinic scanner, synced with the running service (keys and revocations)."""
    from helpers import add_scanner

    from verifiers import OfflineVerifier

    key = add_scanner(server["app"].test_cli_runner(), venue="clinic-1", device="desk-1")[1]
    verifier = OfflineVerifier(
        keys_of(server),
        issuer=server["app"].config["ISSUER"],
        venue_id="clinic-1",
        device_id="desk-1",
    )
    report = verifier.sync(server["url"], key)
    assert report.ok, report.errors
    return verifier


def presented_t(text: str) -> int:
    presentation = parse_sign1(b45decode(text[5:]))
    return cbor.loads(presentation.payload)[2]


def enrolled(page: Any) -> None:
    page.wait_for_selector(STATE.format("device"), state="attached", timeout=15000)
    page.wait_for_function(
        "() => document.getElementById('code-app').dataset.codeT", timeout=10000
    )


def test_enrol_go_offline_and_show_device_codes(
    browser: Any, server: dict[str, Any], tmp_path: Path
) -> None:
    context, page, errors = new_phone(browser, server, clock_at=time.time())
    try:
        resident = api_register(server["url"])
        log_in(page, resident["phone"])
        enrolled(page)
        # One device, enrolled with a public JWK of P-256 and nothing private.
        (device,) = devices_of(server).values()
        assert (
            set(device["jwk"]) >= {"kty", "crv", "x", "y"} and "d" not in device["jwk"]
        )
        assert page.evaluate(
            "() => navigator.serviceWorker.ready.then(r => r.active !== null && r.scope.endsWith('/code'))"
        )
        online = read_qr(page)
        assert online.startswith("RSD1:")
        code = check(server, online)
        assert code.form == "device" and code.sub == device["sub"]
        decision = synced_verifier(server).verify(online, scene="clinic", context={"department": "x"})
        assert (decision.ok, decision.form, decision.sub) == (True, "device", device["sub"])
        assert page.locator("#clock").is_visible()
        assert page.locator("#refresh-form").is_hidden()

        # No network: /code is the worker's shell, and it still shows a device code.
        context.set_offline(True)
        response = page.reload()
        assert response is not None and response.from_service_worker
        assert page.url.endswith("/code")
        page.wait_for_selector(STATE.format("offline"), state="attached", timeout=10000)
        page.wait_for_function(
            "() => document.getElementById('code-app').dataset.codeT", timeout=10000
        )
        assert "离线，二维码有效期至" in page.locator("#status").inner_text()
        assert page.locator("#masked-name").inner_text() == "张*明"
        # The shell holds no resident's data of its own, nor a CSRF token.
        shell_html = page.evaluate(
            "() => caches.match('/code/shell').then(r => r.text())"
        )
        assert "张*明" not in shell_html and "csrf" not in shell_html
        offline = read_qr(page)
        first_t = presented_t(offline)
        code = check(server, offline)
        assert code.form == "device" and code.jti.endswith(f"-{first_t}")
        clock_text = page.locator("#clock").inner_text()
        assert len(clock_text) == 8 and clock_text[2] == clock_text[5] == ":"
        page.screenshot(path=str(tmp_path / "device_offline.png"))

        # 30 s later (the page's clock), a new code with a new t, still offline.
        page.clock.fast_forward(30_000)
        page.wait_for_function(
            f"() => Number(document.getElementById('code-app').dataset.codeT) >= {first_t + 30}",
            timeout=10000,
        )
        later = read_qr(page)
        later_t = presented_t(later)
        assert later != offline and later_t >= first_t + 30
        assert check(server, later, now=later_t + 1).form == "device"
        assert page.locator("#clock").inner_text() != clock_text
        assert (
            page.evaluate("() => document.documentElement.scrollHeight")
            <= PHONE["height"]
        ), "the page scrolls"
    finally:
        context.close()
    # Offline, only the worker's failed network attempts may be logged.
    assert all(
        "ERR_INTERNET_DISCONNECTED" in e or "Failed to fetch" in e for e in errors
    ), errors


def test_a_phone_clock_ten_minutes_off_still_makes_codes_on_the_service_clock(
    browser: Any, server: dict[str, Any]
) -> None:
    context, page, errors = new_phone(
        browser, server, clock_at=time.time() - PAGE_CLOCK_OFF_S
    )
    try:
        resident = api_register(server["url"])
        log_in(page, resident["phone"])
        enrolled(page)
        assert (
            abs(
                page.evaluate("() => Date.now() / 1000")
                + PAGE_CLOCK_OFF_S
                - time.time()
            )
            < 30
        )
        text = read_qr(page)
        t = presented_t(text)
        assert abs(t - time.time()) <= 5, "t is not on the service's clock"
        assert check(server, text).form == "device"
        # Offline too: the offset is kept with the credential.
        context.set_offline(True)
        page.reload()
        page.wait_for_selector(STATE.format("offline"), state="attached", timeout=10000)
        page.wait_for_function(
            "() => document.getElementById('code-app').dataset.codeT", timeout=10000
        )
        assert abs(presented_t(read_qr(page)) - time.time()) <= 5
    finally:
        context.close()
    assert all(
        "ERR_INTERNET_DISCONNECTED" in e or "Failed to fetch" in e for e in errors
    ), errors


def test_the_devices_page_lists_and_withdraws_this_phone(
    browser: Any, server: dict[str, Any]
) -> None:
    context, page, errors = new_phone(browser, server)
    try:
        resident = api_register(server["url"])
        log_in(page, resident["phone"])
        enrolled(page)
        (device_id,) = devices_of(server)
        code_before = read_qr(page)
        page.goto("/devices")
        item = page.locator(f"li[data-device-id='{device_id}']")
        item.wait_for(timeout=5000)
        assert "本机" in item.inner_text() and "有效" in item.inner_text()
        item.locator("button").click()
        page.wait_for_selector(
            f"#devices-app[data-withdrawn='{device_id}']",
            state="attached",
            timeout=5000,
        )
        assert "已撤销" in item.inner_text()
        assert not devices_of(server)[device_id]["active"]
        # This phone forgot its key: the next visit to /code enrols a new one.
        page.goto("/code")
        page.wait_for_function(
            "() => document.getElementById('code-app').dataset.codeT", timeout=15000
        )
        assert len(devices_of(server)) == 2
        check(server, read_qr(page))
        # A scanner that synced since refuses the withdrawn phone's code as revoked.
        verifier = synced_verifier(server)
        assert verifier.verify(code_before, scene="clinic", context={"department": "x"}).code == "revoked"
        # In English too.
        page.click("#lang-toggle")
        page.goto("/devices")
        page.wait_for_selector("li.device-withdrawn", timeout=5000)
        assert "Withdrawn" in page.locator("#devices").inner_text()
        assert page.locator("h1").inner_text() == "My devices"
    finally:
        context.close()
    assert errors == [], errors


def test_logging_out_leaves_no_device_state_behind(
    browser: Any, server: dict[str, Any]
) -> None:
    context, page, errors = new_phone(browser, server)
    try:
        resident = api_register(server["url"])
        log_in(page, resident["phone"])
        enrolled(page)
        page.click("nav.links button[type=submit]")
        page.wait_for_url("**/login")
        assert page.evaluate("() => caches.keys()") == []
        assert page.evaluate("() => indexedDB.databases().then(dbs => dbs.length)") == 0
        assert (
            page.evaluate(
                "() => navigator.serviceWorker.getRegistrations().then(r => r.length)"
            )
            == 0
        )
    finally:
        context.close()
    assert errors == [], errors


def test_another_residents_device_state_is_never_shown(
    browser: Any, server: dict[str, Any]
) -> None:
    """A session that ended without a logout, then another resident in the same browser."""
    context, page, errors = new_phone(browser, server)
    try:
        first = api_register(server["url"])
        log_in(page, first["phone"])
        enrolled(page)
        context.clear_cookies()
        second = api_register(server["url"])
        log_in(page, second["phone"])
        enrolled(page)
        code = check(server, read_qr(page))
        devices = list(devices_of(server).values())
        subs = {device["sub"] for device in devices}
        assert len(subs) == 2 and code.sub == devices[-1]["sub"]
    finally:
        context.close()
    assert errors == [], errors


# -- the page's encoders against the library's, byte for byte --------------------------------

CBOR_CASES: list[Any] = [
    0,
    1,
    23,
    24,
    255,
    256,
    65535,
    65536,
    2**32 - 1,
    2**32,
    2**53 - 1,
    -1,
    -24,
    -25,
    -256,
    -257,
    -(2**32),
    -(2**53) + 1,
    "",
    "a",
    "人民广场",
    "x" * 300,
    True,
    False,
    None,
    {"hex": ""},
    {"hex": "00ff10"},
    {"hex": "ab" * 300},
    [],
    [1, [2, 3]],
    {"map": []},
    {"map": [[1, -7]]},
    {
        "map": [
            [4, {"hex": "0102"}],
            [1, -8],
            [-1, 1],
            ["use", "device"],
            [10, 0],
            [-100, 1],
        ]
    },
    {
        "tag": 18,
        "value": [{"hex": "a10126"}, {"map": []}, {"hex": "00"}, {"hex": "11" * 64}],
    },
]


def to_python(case: Any) -> Any:
    if isinstance(case, dict) and "hex" in case:
        return bytes.fromhex(case["hex"])
    if isinstance(case, dict) and "map" in case:
        return {to_python(key): to_python(value) for key, value in case["map"]}
    if isinstance(case, dict) and "tag" in case:
        return cbor.Tag(case["tag"], to_python(case["value"]))
    if isinstance(case, list):
        return [to_python(item) for item in case]
    return case


TO_JS = """
function toJs(c) {
  if (c !== null && typeof c === 'object' && !Array.isArray(c)) {
    if ('hex' in c) return Uint8Array.from((c.hex.match(/../g) || []).map(h => parseInt(h, 16)));
    if ('map' in c) return new Map(c.map.map(([k, v]) => [toJs(k), toJs(v)]));
    if ('tag' in c) return new RSD.Tag(c.tag, toJs(c.value));
  }
  if (Array.isArray(c)) return c.map(toJs);
  return c;
}
const hex = b => Array.from(b, x => x.toString(16).padStart(2, '0')).join('');
"""


def in_page(page: Any, function: str, arg: Any) -> Any:
    """Run the JavaScript ``function`` on ``arg`` in the page, with ``toJs`` and ``hex`` at hand."""
    return page.evaluate(f"(arg) => {{ {TO_JS} return ({function})(arg); }}", arg)


@pytest.fixture
def encoder_page(browser: Any, server: dict[str, Any]) -> Iterator[Any]:
    """The offline shell (no login needed): it loads static/rsd.js."""
    context, page, _errors = new_phone(browser, server)
    page.goto("/code/shell")
    page.wait_for_function("() => window.RSD !== undefined")
    yield page
    context.close()


def test_the_pages_cbor_is_the_librarys(encoder_page: Any) -> None:
    encoded = in_page(
        encoder_page, "cases => cases.map(c => hex(RSD.cbor(toJs(c))))", CBOR_CASES
    )
    for case, js in zip(CBOR_CASES, encoded, strict=True):
        assert js == cbor.dumps(to_python(case)).hex(), case


def test_the_pages_base45_is_the_librarys(encoder_page: Any) -> None:
    inputs = [
        "",
        "00",
        "ff",
        "ffff",
        "4142",
        "414243",
        b"ietf!".hex(),
        secrets.token_bytes(301).hex(),
    ]
    encoded = in_page(
        encoder_page, "inputs => inputs.map(h => RSD.base45(toJs({hex: h})))", inputs
    )
    assert encoded == [b45encode(bytes.fromhex(h)) for h in inputs]
    # RFC 9285 4.3's examples.
    assert encoded[4] == "BB8"
    assert (
        encoder_page.evaluate("() => RSD.base45(new TextEncoder().encode('ietf!'))")
        == "QED8WEX0"
    )


def test_the_pages_device_code_is_the_librarys(encoder_page: Any) -> None:
    credential = secrets.token_bytes(200)
    t = 1767225600
    signature = secrets.token_bytes(64)
    signed: list[bytes] = []
    expected = device_code(credential, t, lambda data: signed.append(data) or signature)
    result = in_page(
        encoder_page,
        """([cred, t, sig]) => {
            let signedHex = null;
            return RSD.deviceCode(toJs({hex: cred}), t, bytes => { signedHex = hex(bytes); return toJs({hex: sig}); })
              .then(text => ({text, signedHex}));
        }""",
        [credential.hex(), t, signature.hex()],
    )
    assert result["text"] == expected
    assert bytes.fromhex(result["signedHex"]) == signed[0]
    presentation = parse_sign1(b45decode(expected[5:]))
    assert bytes.fromhex(result["signedHex"]) == sig_structure(
        presentation.protected_bytes, presentation.payload
    )
    assert encoder_page.evaluate("() => RSD.fromBase64url('AQID_-8')") is not None
    assert encoder_page.evaluate(
        "() => Array.from(RSD.fromBase64url('AQID_-8'))"
    ) == list(b64url_decode("AQID_-8"))
    for bad in ("a", "ab=", "a b", "abcde"):
        assert encoder_page.evaluate("t => RSD.fromBase64url(t)", bad) is None, bad


def test_time_to_make_a_code(browser: Any, server: dict[str, Any]) -> None:
    """WebCrypto sign + CBOR/Base45 + QR draw in Chromium, as the page does every 30 s (printed)."""
    context, page, errors = new_phone(browser, server)
    try:
        resident = api_register(server["url"])
        log_in(page, resident["phone"])
        enrolled(page)
        for _ in range(30):
            page.evaluate("() => window.codeservice.device.make()")
        timings = page.evaluate("() => window.codeservice.device")
        make, sign, draw = (
            timings[name][1:] for name in ("makeMs", "signMs", "drawMs")
        )
        version = page.locator("#qr svg").get_attribute("data-version")
        text = read_qr(page)
        print(
            f"\ndevice code: {len(text)} characters, QR version {version} (M, alphanumeric); "
            f"made in {statistics.median(make):.1f} ms median (max {max(make):.1f}) over {len(make)}: "
            f"sign {statistics.median(sign):.1f} ms, then COSE+Base45+QR draw {statistics.median(draw):.1f} ms"
        )
        assert statistics.median(make) < 100
        assert check(server, text).form == "device"
    finally:
        context.close()
    assert errors == [], errors


# -- attacks: what the page does with a hostile or broken device API -----------------------

HOSTILE_ANSWERS = {
    "server_error": (500, {"error": {"code": "internal", "message": "boom"}}),
    "not_base64url": (
        201,
        {
            "device_id": "d1",
            "credential": "%%%<script>",
            "expires_at": 2**40,
            "server_time": 1,
        },
    ),
    "no_server_time": (
        201,
        {"device_id": "d1", "credential": "AAAA", "expires_at": 2**40},
    ),
    "times_as_text": (
        201,
        {
            "device_id": "d1",
            "credential": "AAAA",
            "expires_at": "soon",
            "server_time": "now",
        },
    ),
    "device_id_not_text": (
        201,
        {
            "device_id": {"$ne": 1},
            "credential": "AAAA",
            "expires_at": 2**40,
            "server_time": 1,
        },
    ),
    "not_json": (201, "<html>not json</html>"),
    "a_list": (201, ["device_id", "credential"]),
}


@pytest.mark.parametrize("answer", sorted(HOSTILE_ANSWERS))
def test_a_broken_enrolment_answer_keeps_the_online_code(
    browser: Any, tmp_path: Path, keys_dir: Path, answer: str
) -> None:
    """The page stores nothing and makes no device code; the online code stays, and verifies."""
    from flask import Response

    status, body = HOSTILE_ANSWERS[answer]

    def install(app: Any) -> None:
        def hostile_enrol() -> Any:
            text = body if isinstance(body, str) else json.dumps(body)
            return Response(text, status=status, mimetype="application/json")

        app.view_functions["api.enrol_device"] = hostile_enrol

    with serving(tmp_path, keys_dir, install) as running:
        context, page, errors = new_phone(browser, running)
        try:
            resident = api_register(running["url"])
            log_in(page, resident["phone"])
            page.wait_for_selector(
                STATE.format("online"), state="attached", timeout=10000
            )
            assert page.evaluate("() => window.codeservice.device.codes") == 0
            stored = page.evaluate(
                "() => new Promise(r => { const o = indexedDB.open('codeservice-device', 1);"
                " o.onsuccess = () => { const q = o.result.transaction('device').objectStore('device').count();"
                " q.onsuccess = () => r(q.result); }; })"
            )
            assert stored == 0
            token = read_qr(page)
            assert not token.startswith("RSD1:")
            from verifiers import OfflineVerifier

            verifier = OfflineVerifier(
                keys_of(running), issuer=running["app"].config["ISSUER"]
            )
            assert verifier.verify(
                token, scene="clinic", context={"department": "x"}
            ).ok
            assert page.locator("#refresh-form").is_visible()
        finally:
            context.close()
    assert all("status of 500" in e for e in errors), errors
