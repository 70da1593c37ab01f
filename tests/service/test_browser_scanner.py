"""/scanner in a real browser: Chromium (Playwright) against a real server on SQLite.

The camera is Chromium's fake one, playing a Y4M file written here from a code
rendered by the service's own QR module (codeservice.qr, quiet zone and all);
the hardware reader is the keyboard (``page.keyboard.type`` and Enter), as a
keyboard-wedge reader types. Screenshots of the answers go to /tmp.

Skips when Playwright or /usr/bin/chromium is missing, unless
CODESERVICE_REQUIRE_SERVERS=1 (then it fails).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import CHROMIUM, CHROMIUM_ARGS, PHONE, add_scanner, browser_config, served_app, service_code
from offline_minting import a_device_code, a_paper_code

from codeservice.keystore import KeyStore
from codeservice.qr import module_matrix

SCREENSHOTS = Path("/tmp")
Y4M_SIZE = (640, 480)
QUIET_ZONE = 4
TABLET = {"width": 800, "height": 1280}


@pytest.fixture
def server(tmp_path: Path, keys_dir: Path) -> Iterator[dict[str, Any]]:
    with served_app(browser_config(tmp_path, keys_dir)) as running:
        yield running


def new_scanner(server: dict[str, Any], *extra: str, scenes: str = "venue,transit,clinic") -> tuple[int, str]:
    runner = server["app"].test_cli_runner()
    if extra:
        result = runner.invoke(args=["scanners", "add", "--venue", "desk-1", "--device", "desk", "--scenes", scenes,
                                     *extra])
        assert result.exit_code == 0, result.output
        return int(result.output.split()[1].rstrip(":")), result.output.strip().splitlines()[-1]
    return add_scanner(runner, venue="museum", device="door-1", scenes=scenes)


@pytest.fixture
def staff(browser: Any, server: dict[str, Any]) -> Iterator[Any]:
    """A phone's browser context and page, every request recorded; console errors fail the test."""
    context = browser.new_context(viewport=PHONE, base_url=server["url"], locale="en-US")
    yield from watched_page(context)


def watched_page(context: Any) -> Iterator[Any]:
    page = context.new_page()
    errors: list[str] = []
    requests: list[Any] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("request", lambda request: requests.append(request))
    page.requests = requests  # type: ignore[attr-defined]
    page.expected_errors = []  # type: ignore[attr-defined]
    yield page
    context.close()
    unexpected = [e for e in errors if not any(x in e for x in page.expected_errors)]  # type: ignore[attr-defined]
    assert not unexpected, unexpected


def sign_in(page: Any, key: str) -> None:
    page.goto("/scanner")
    page.fill("#scanner-key", key)
    page.click("button[type=submit]")
    page.wait_for_selector("#scene-form")


def pick_scene(page: Any, scene: str, **context: str) -> None:
    page.select_option("#scene", scene)
    for name, value in context.items():
        selector = f"#ctx-{name}"
        if page.locator(selector).evaluate("e => e.tagName") == "SELECT":
            page.select_option(selector, value)
        else:
            page.fill(selector, value)
    page.click("#scene-form button[type=submit]")
    page.wait_for_selector("#scan-view:not([hidden])")


def wedge(page: Any, code: str) -> dict[str, str]:
    """Type ``code`` and Enter as a keyboard-wedge reader does; the answer on screen."""
    if page.locator("#answer").is_visible():
        page.locator("#answer-next").click()
    page.focus("#wedge")
    with page.expect_response("**/scanner/verify"):
        page.keyboard.type(code)
        page.keyboard.press("Enter")
    return shown_answer(page)


def shown_answer(page: Any) -> dict[str, str]:
    page.wait_for_selector("#answer:not([hidden])")
    answer = page.locator("#answer")
    return {
        "class": answer.get_attribute("class") or "",
        "icon": page.locator(".answer-icon").inner_text(),
        "headline": page.locator(".answer-headline").inner_text(),
        "words": page.locator(".answer-words").inner_text(),
        "text": answer.inner_text(),
    }


def service_codes(server: dict[str, Any], keys_dir: Path) -> dict[str, str]:
    now = int(time.time())
    signer = KeyStore(keys_dir).signer()
    return {
        "jws": service_code(server["app"], keys_dir),
        # Three residents: the scenes' rules (one check-in a day) hold across forms.
        "device": a_device_code(signer, now=now, t=now - 2, labels={2: "deviceHolder0001"}),  # type: ignore[arg-type]
        "paper": a_paper_code(signer, now=now, labels={2: "paperHolder00001"}),  # type: ignore[arg-type]
    }


# -- the camera --------------------------------------------------------------------------


def write_y4m(path: Path, text: str, size: tuple[int, int] = Y4M_SIZE) -> None:
    """One 4:2:0 frame showing ``text``'s QR (codeservice.qr's modules, a quiet zone of 4), as large as fits."""
    width, height = size
    modules = module_matrix(text)
    count = len(modules) + 2 * QUIET_ZONE
    pixel = min(width, height) * 9 // 10 // count
    assert pixel >= 3, "the code is too big for the frame"
    left, top = (width - count * pixel) // 2, (height - count * pixel) // 2
    luma = bytearray([235]) * (width * height)
    for y, row in enumerate(modules):
        for x, dark in enumerate(row):
            if not dark:
                continue
            x0, y0 = left + (x + QUIET_ZONE) * pixel, top + (y + QUIET_ZONE) * pixel
            for line in range(y0, y0 + pixel):
                luma[line * width + x0 : line * width + x0 + pixel] = bytes([16]) * pixel
    chroma = bytes([128]) * ((width // 2) * (height // 2))
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F10:1 Ip A1:1 C420jpeg\n".encode("ascii"))
        out.write(b"FRAME\n" + bytes(luma) + chroma + chroma)


def verify_calls(page: Any) -> int:
    return sum(request.url.endswith("/scanner/verify") for request in page.requests)


def test_the_camera_sees_a_code_green_then_red_for_the_same_code(
    browser: Any, server: dict[str, Any], keys_dir: Path, tmp_path: Path
) -> None:
    _scanner_id, key = new_scanner(server)
    token = service_code(server["app"], keys_dir)
    video = tmp_path / "code.y4m"
    write_y4m(video, token)
    camera = browser.browser_type.launch(
        executable_path=CHROMIUM,
        args=[
            *CHROMIUM_ARGS,
            "--use-fake-device-for-media-stream",
            "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-video-capture={video}",
        ],
    )
    try:
        context = camera.new_context(viewport=PHONE, base_url=server["url"], locale="en-US", permissions=["camera"])
        for page in watched_page(context):
            sign_in(page, key)
            pick_scene(page, "venue")
            answer = shown_answer(page)
            assert "answer-ok" in answer["class"] and answer["icon"] == "✔" and answer["headline"] == "Accepted"
            assert answer["words"] == "Let them through"
            page.screenshot(path=str(SCREENSHOTS / "scanner_camera_accepted.png"))
            # The code is still in front of the camera: it is not sent again...
            page.wait_for_timeout(1500)
            assert verify_calls(page) == 1
            # ...until the staff dismiss the answer: a deliberate rescan.
            page.click("#answer-next")
            page.wait_for_selector("#answer.answer-refused:not([hidden])")
            answer = shown_answer(page)
            assert answer["icon"] == "✖" and answer["headline"] == "Refused"
            assert answer["words"] == "Already used: this code was scanned before"
            assert verify_calls(page) == 2
            page.screenshot(path=str(SCREENSHOTS / "scanner_camera_replayed.png"))
    finally:
        camera.close()


# -- the keyboard wedge ------------------------------------------------------------------


def test_a_reader_typing_every_form_at_a_staffed_desk(
    browser: Any, server: dict[str, Any], keys_dir: Path, staff: Any
) -> None:
    _scanner_id, key = new_scanner(server, "--attended", scenes="venue,clinic")
    codes = service_codes(server, keys_dir)
    sign_in(staff, key)
    pick_scene(staff, "clinic", department="Cardiology")

    jws = wedge(staff, codes["jws"])
    assert "answer-ok" in jws["class"] and "Checked in" in jws["text"] and "Cardiology" in jws["text"]
    staff.screenshot(path=str(SCREENSHOTS / "scanner_accepted.png"))

    device = wedge(staff, codes["device"])
    assert "answer-ok" in device["class"], device
    assert wedge(staff, codes["device"])["words"] == "Already used: this code was scanned before"
    staff.screenshot(path=str(SCREENSHOTS / "scanner_refused.png"))

    paper = wedge(staff, codes["paper"])
    assert "answer-ok" in paper["class"], paper
    assert staff.locator(".answer-check").is_visible()
    check = staff.locator(".answer-check").inner_text()
    assert "Check the ID card" in check and "张*明" in check and "0521" in check and "123X" in check
    staff.screenshot(path=str(SCREENSHOTS / "scanner_paper.png"))
    # The same card again the same day: one check-in a day.
    again = wedge(staff, codes["paper"])
    assert again["words"] == "Already checked in here today" and not staff.locator(".answer-check").is_visible()
    staff.click("#answer-next")
    assert "3 accepted, 2 refused" in staff.locator("#counts").inner_text()
    staff.reload()  # the counts are the server's: a reload keeps them
    assert "3 accepted, 2 refused" in staff.locator("#counts").inner_text()
    # The scene is kept too: straight back to scanning.
    assert staff.locator("#scan-view").is_visible()


def test_an_unstaffed_scanner_refuses_paper_in_words(
    server: dict[str, Any], keys_dir: Path, staff: Any
) -> None:
    _scanner_id, key = new_scanner(server)
    sign_in(staff, key)
    pick_scene(staff, "transit", station="People's Square", direction="in")
    answer = wedge(staff, service_codes(server, keys_dir)["paper"])
    assert answer["words"] == "Paper code: accepted only where staff check the ID card"
    assert wedge(staff, "not a code")["words"] == "Not a readable code: ask them to show it again"


def test_the_answer_is_announced_and_not_told_by_colour_alone(
    server: dict[str, Any], keys_dir: Path, staff: Any
) -> None:
    _scanner_id, key = new_scanner(server)
    sign_in(staff, key)
    pick_scene(staff, "venue")
    answer = wedge(staff, "garbage")
    region = staff.locator("#answer-region")
    assert region.get_attribute("aria-live") == "assertive" and region.get_attribute("aria-atomic") == "true"
    assert answer["icon"] == "✖" and answer["headline"] == "Refused" and answer["words"]
    box = staff.locator("#answer").bounding_box()
    assert box == {"x": 0, "y": 0, "width": PHONE["width"], "height": PHONE["height"]}  # fills the screen


def test_a_revoked_scanners_session_ends(server: dict[str, Any], keys_dir: Path, staff: Any) -> None:
    scanner_id, key = new_scanner(server)
    sign_in(staff, key)
    pick_scene(staff, "venue")
    result = server["app"].test_cli_runner().invoke(args=["scanners", "revoke", str(scanner_id)])
    assert result.exit_code == 0
    staff.expected_errors.append("401")  # the browser logs the refused call
    staff.focus("#wedge")
    with staff.expect_response("**/scanner/verify") as refused:
        staff.keyboard.type(service_code(server["app"], keys_dir))
        staff.keyboard.press("Enter")
    assert refused.value.status == 401
    staff.wait_for_selector("#scanner-key")
    assert "revoked" in staff.locator("main").inner_text()


def test_the_key_is_never_in_storage_cookies_or_urls(
    server: dict[str, Any], keys_dir: Path, staff: Any
) -> None:
    _scanner_id, key = new_scanner(server)
    sign_in(staff, key)
    pick_scene(staff, "venue")
    wedge(staff, service_code(server["app"], keys_dir))
    staff.reload()
    stored = staff.evaluate(
        """async () => ({
            local: JSON.stringify(Object.entries(localStorage)),
            session: JSON.stringify(Object.entries(sessionStorage)),
            cookies: document.cookie,
            idb: JSON.stringify(await indexedDB.databases()),
            url: location.href,
            history: history.length,
        })"""
    )
    for where in ("local", "session", "cookies", "idb", "url"):
        assert key not in stored[where], where
    assert "codeservice_scanner" not in stored["cookies"]  # HttpOnly: no script reads it
    cookies = staff.context.cookies()
    scanner_cookies = [cookie for cookie in cookies if cookie["name"] == "codeservice_scanner"]
    assert len(scanner_cookies) == 1 and scanner_cookies[0]["httpOnly"] and key not in scanner_cookies[0]["value"]
    assert scanner_cookies[0]["sameSite"] == "Strict" and scanner_cookies[0]["path"] == "/scanner"
    for request in staff.requests:
        assert key not in request.url, request.url
        if request.url.endswith("/scanner/session"):
            continue  # the one POST that carries it, in its body
        assert key not in (request.post_data or ""), request.url
        assert key not in json.dumps(request.headers), request.url


def test_without_network_it_says_online_only_and_points_to_the_gate_loop(
    server: dict[str, Any], keys_dir: Path, staff: Any
) -> None:
    _scanner_id, key = new_scanner(server)
    sign_in(staff, key)
    pick_scene(staff, "venue")
    staff.context.set_offline(True)
    staff.expected_errors.append("ERR_INTERNET_DISCONNECTED")  # a call tried without network, if one is
    banner = staff.locator("#offline")
    banner.wait_for(state="visible")
    assert "online only" in banner.inner_text() and "python -m verifiers gate" in banner.inner_text()
    assert banner.get_attribute("role") == "alert"
    staff.screenshot(path=str(SCREENSHOTS / "scanner_offline.png"))
    staff.focus("#wedge")
    staff.keyboard.type(service_code(server["app"], keys_dir))
    staff.keyboard.press("Enter")
    assert banner.is_visible() and not staff.locator("#answer").is_visible()
    staff.context.set_offline(False)
    banner.wait_for(state="hidden")


def test_a_tablet_in_kiosk_mode_and_the_chinese_page(
    browser: Any, server: dict[str, Any], keys_dir: Path
) -> None:
    _scanner_id, key = new_scanner(server)
    context = browser.new_context(viewport=TABLET, base_url=server["url"], locale="zh-CN")
    for page in watched_page(context):
        sign_in(page, key)
        assert "扫码核验" in page.locator("h1").first.inner_text()
        pick_scene(page, "venue")
        answer = wedge(page, service_code(server["app"], keys_dir))
        assert answer["headline"] == "通过" and "已入场" in answer["text"]
        box = page.locator("#answer").bounding_box()
        assert box == {"x": 0, "y": 0, "width": TABLET["width"], "height": TABLET["height"]}
        page.screenshot(path=str(SCREENSHOTS / "scanner_tablet_zh.png"))
