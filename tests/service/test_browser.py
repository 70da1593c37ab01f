"""The code page in a real browser: Chromium (Playwright) against a real server.

The service runs in a background thread (werkzeug) on SQLite with 15-second
codes; the phone is a 360x640 viewport. The QR on screen is photographed,
decoded with zxing-cpp and verified offline with the served key set, as a
scanner would; then the page must renew it by itself, without a reload.

Skips when Playwright or /usr/bin/chromium is missing, unless
CODESERVICE_REQUIRE_SERVERS=1 (then it fails).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import DEMO_PASSWORD, PHONE, api_register, browser_config, log_in, read_qr, registration, served_app

CODE_TTL = 15
MIN_QR_PX = 240
LEAD_SCREENSHOT = Path("/tmp/code_page.png")


@pytest.fixture
def server(tmp_path: Path, keys_dir: Path) -> Iterator[dict[str, Any]]:
    """The whole service on a free loopback port; yields its base URL and app."""
    with served_app(browser_config(tmp_path, keys_dir, CODE_TTL=CODE_TTL)) as running:
        yield running


@pytest.fixture
def phone(browser: Any, server: dict[str, Any]) -> Iterator[Any]:
    """A fresh browser context (a phone) and page; console errors fail the test.

    Service workers are blocked: this phone cannot hold a device key, so the
    page shows the online code, the fallback these tests are about (device
    codes: test_browser_device.py).
    """
    context = browser.new_context(viewport=PHONE, base_url=server["url"], locale="zh-CN", service_workers="block")
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    # A test that provokes an error response says which: the browser logs it.
    page.expected_errors = []  # type: ignore[attr-defined]
    yield page
    context.close()
    # A CSP violation (an inline script or style) shows up as a console error.
    unexpected = [e for e in errors if not any(x in e for x in page.expected_errors)]  # type: ignore[attr-defined]
    assert not unexpected, unexpected


def verify(server: dict[str, Any], token: str) -> Any:
    from verifiers import KeySet, OfflineVerifier

    keys = KeySet.from_jwks(f"{server['url']}/.well-known/jwks.json")
    verifier = OfflineVerifier(keys, issuer=server["app"].config["ISSUER"])
    decision = verifier.verify(token, scene="clinic", context={"department": "cardiology"})
    verifier.close()
    return decision


def assert_in_viewport(page: Any, selector: str) -> dict[str, float]:
    box = page.locator(selector).bounding_box()
    assert box is not None, f"{selector} is not displayed"
    assert box["x"] >= 0 and box["y"] >= 0, (selector, box)
    assert box["x"] + box["width"] <= PHONE["width"] + 0.5, (selector, box)
    assert box["y"] + box["height"] <= PHONE["height"] + 0.5, (selector, box)
    return box


def test_live_code_renews_in_place(phone: Any, server: dict[str, Any], tmp_path: Path) -> None:
    page = phone
    resident = api_register(server["url"])
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url) if frame == page.main_frame else None)
    log_in(page, resident["phone"])
    loaded_at = time.time()
    navigations.clear()
    page.evaluate("() => { window.__sameDocument = 'still here'; }")

    # The QR: at least 240 px, fully on screen with the name, category and countdown.
    box = assert_in_viewport(page, "#qr svg")
    assert box["width"] >= MIN_QR_PX and abs(box["width"] - box["height"]) < 1
    for selector in ("#masked-name", "#countdown", "#refresh", "#lang-toggle"):
        assert_in_viewport(page, selector)
    assert page.evaluate("() => document.documentElement.scrollHeight") <= PHONE["height"], "the page scrolls"
    assert page.locator("#masked-name").inner_text() == "张*明"
    assert "秒后过期" in page.locator("#countdown").inner_text()
    page.wait_for_selector("#code-app[data-device-state='unsupported']", state="attached", timeout=5000)
    assert page.locator("#device-note").inner_text() == "此浏览器无法保存设备密钥。"
    page.screenshot(path=str(tmp_path / "code_page.png"))
    shutil.copyfile(tmp_path / "code_page.png", LEAD_SCREENSHOT)

    first = read_qr(page)
    decision = verify(server, first)
    assert decision.ok and decision.code == "accepted", decision.to_dict()
    first_jti, first_exp = decision.jti, decision.exp

    # Renewal at refresh_after (a few seconds before exp), by the page itself.
    page.wait_for_function(
        "() => window.codeservice && window.codeservice.renewals >= 1", timeout=(CODE_TTL + 5) * 1000
    )
    renewed_at = page.evaluate("() => window.codeservice.lastRenewalAt") / 1000
    assert renewed_at <= first_exp, "the code was renewed only after it had expired"
    assert renewed_at - loaded_at >= CODE_TTL / 3, "renewed far earlier than refresh_after"
    second = read_qr(page)
    decision = verify(server, second)
    assert decision.ok, decision.to_dict()
    assert decision.jti != first_jti
    assert page.evaluate("() => window.__sameDocument") == "still here"
    assert navigations == [], f"the page navigated: {navigations}"
    assert page.locator("#qr svg").count() == 1

    # The refresh button: a new code at once.
    page.click("#refresh")
    page.wait_for_function("() => window.codeservice.renewals >= 2", timeout=5000)
    third = read_qr(page)
    decision = verify(server, third)
    assert decision.ok and decision.jti not in (first_jti, verify(server, second).jti)
    assert page.evaluate("() => window.__sameDocument") == "still here"

    # The language toggle.
    page.click("#lang-toggle")
    page.wait_for_url("**/code")
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.locator("#refresh").inner_text() == "Refresh code"
    assert "Code expires in" in page.locator("#countdown").inner_text()
    assert verify(server, read_qr(page)).ok
    assert page.evaluate("() => document.documentElement.scrollHeight") <= PHONE["height"], "the page scrolls"
    page.screenshot(path=str(tmp_path / "code_page_en.png"))
    shutil.copyfile(tmp_path / "code_page_en.png", LEAD_SCREENSHOT.with_name("code_page_en.png"))
    print(
        f"\nQR {box['width']:.0f}x{box['height']:.0f} CSS px at {box['x']:.0f},{box['y']:.0f}; "
        f"renewed {renewed_at - loaded_at:.1f} s after load, {first_exp - renewed_at:.1f} s before expiry"
    )


def test_offline_keeps_the_code_until_it_expires(phone: Any, server: dict[str, Any], tmp_path: Path) -> None:
    page = phone
    body = registration()
    page.goto("/register")
    page.fill("#name", body["name"])
    page.select_option("#id_type", body["id_type"])
    page.fill("#id_number", body["id_number"])
    page.fill("#phone", body["phone"])
    page.fill("#password", body["password"])
    page.click("button[type=submit]")
    page.wait_for_url("**/code")
    token = read_qr(page)

    page.context.set_offline(True)
    page.wait_for_function("() => document.getElementById('status-text').textContent.length > 0", timeout=5000)
    assert "网络已断开" in page.locator("#status").inner_text()
    assert page.locator("#qr-overlay").is_hidden()  # the code is still good: still shown
    assert read_qr(page) == token

    # Past its expiry the code is greyed out, and says why.
    page.wait_for_selector("#qr-overlay:not([hidden])", timeout=(CODE_TTL + 5) * 1000)
    assert page.locator("#qr-overlay").inner_text() == "离线 — 二维码已过期"
    assert "expired" in (page.locator("#qr-frame").get_attribute("class") or "")
    opacity = page.evaluate("() => getComputedStyle(document.getElementById('qr')).opacity")
    assert float(opacity) < 0.5
    assert "请连接网络" in page.locator("#status").inner_text()
    page.screenshot(path=str(tmp_path / "code_page_offline.png"))
    shutil.copyfile(tmp_path / "code_page_offline.png", LEAD_SCREENSHOT.with_name("code_page_offline.png"))

    # Back online: a new code straight away.
    page.context.set_offline(False)
    page.wait_for_selector("#qr-overlay[hidden]", state="attached", timeout=10000)
    assert page.evaluate("() => window.codeservice.renewals") >= 1
    fresh = read_qr(page)
    assert fresh != token and verify(server, fresh).ok
    assert page.locator("#status-text").inner_text() == ""


def test_an_ended_session_says_so_with_a_login_link(phone: Any, server: dict[str, Any]) -> None:
    page = phone
    resident = api_register(server["url"])
    log_in(page, resident["phone"])
    page.expected_errors.append("status of 401")
    # Logged out elsewhere (the API, sharing the browser's cookies).
    response = page.request.delete("/api/v1/session")
    assert response.status == 204
    page.click("#refresh")
    page.wait_for_selector("#login-link:not([hidden])", timeout=5000)
    assert "登录已过期" in page.locator("#status").inner_text()
    page.click("#login-link")
    page.wait_for_url("**/login")


def test_forms_work_in_english_without_javascript(browser: Any, server: dict[str, Any]) -> None:
    context = browser.new_context(
        viewport=PHONE, base_url=server["url"], java_script_enabled=False, locale="en-US",
        extra_http_headers={"Accept-Language": "en-US,en;q=0.9"},
    )
    try:
        page = context.new_page()
        resident = api_register(server["url"])
        page.goto("/login")
        assert page.locator("h1").inner_text() == "Log in"
        page.fill("#phone", resident["phone"])
        page.fill("#password", "wrong password 123")
        page.click("button[type=submit]")
        assert "The phone number or the password is wrong" in page.locator(".form-error").inner_text()
        page.fill("#password", DEMO_PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url("**/code")
        # The server-rendered code is there without any script.
        assert verify(server, read_qr(page)).ok
        assert page.locator("#qr svg").bounding_box()["width"] >= MIN_QR_PX
    finally:
        context.close()
