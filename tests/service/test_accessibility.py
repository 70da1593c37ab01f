"""Every HTML page of the service, checked by axe-core in Chromium, in Chinese and in English.

axe-core is vendored for the tests only (tests/vendor/axe-core, refreshed by
tests/vendor/refresh.sh) and injected by Playwright; the pages' CSP would
refuse an injected script, so these contexts bypass it (nothing else does).
No serious or critical violation is allowed. Then text at 200% on a 360x640
phone: the QR and the scanner's answer stay inside the screen.

Skips when Playwright or /usr/bin/chromium is missing, unless
CODESERVICE_REQUIRE_SERVERS=1 (then it fails).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import PHONE, TESTS, add_scanner, api_register, browser_config, log_in, served_app, service_code

AXE = TESTS / "vendor" / "axe-core" / "axe.min.js"
BLOCKING = ("serious", "critical")
LOCALES = {"zh": "zh-CN", "en": "en-US"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from helpers import new_keys_dir

    tmp = tmp_path_factory.mktemp("a11y")
    with served_app(browser_config(tmp, new_keys_dir(tmp / "keys"))) as running:
        running["keys_dir"] = tmp / "keys"
        running["scanner_key"] = add_scanner(
            running["app"].test_cli_runner(), venue="museum", device="door-1", scenes="venue,transit,clinic"
        )[1]
        running["resident"] = api_register(running["url"])
        yield running


@pytest.fixture(params=sorted(LOCALES))
def lang(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def page(browser: Any, server: dict[str, Any], lang: str) -> Iterator[Any]:
    context = browser.new_context(
        viewport=PHONE, base_url=server["url"], locale=LOCALES[lang], bypass_csp=True, service_workers="block"
    )
    yield context.new_page()
    context.close()


def violations(page: Any) -> list[str]:
    """axe-core's serious and critical violations on the page as it is now, one line each."""
    page.add_script_tag(path=str(AXE))
    results = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    found = []
    for violation in results["violations"]:
        if violation["impact"] in BLOCKING:
            targets = [" ".join(map(str, node["target"])) for node in violation["nodes"]]
            found.append(f"{page.url} {violation['id']} ({violation['impact']}): {violation['help']} at {targets}")
    return found


def test_the_resident_pages(page: Any, server: dict[str, Any], lang: str) -> None:
    found = []
    for path in ("/register", "/login"):
        page.goto(path)
        assert page.locator("html").get_attribute("lang") == ("zh-Hans" if lang == "zh" else "en")
        found += violations(page)
    log_in(page, server["resident"]["phone"])
    for path in ("/code", "/history", "/devices"):
        page.goto(path)
        page.wait_for_load_state("networkidle")
        found += violations(page)
    assert not found, "\n".join(found)


def sign_in_and_scan(page: Any, server: dict[str, Any]) -> list[str]:
    found = []
    page.goto("/scanner")
    found += violations(page)  # signed out
    page.fill("#scanner-key", server["scanner_key"])
    page.click("button[type=submit]")
    page.wait_for_selector("#scene-form")
    page.select_option("#scene", "transit")
    found += violations(page)  # the scene and its context
    page.fill("#ctx-station", "People's Square")
    page.click("#scene-form button[type=submit]")
    page.wait_for_selector("#scan-view:not([hidden])")
    found += violations(page)  # scanning
    return found


def show_answer(page: Any, code: str) -> None:
    page.focus("#wedge")
    page.keyboard.type(code)
    page.keyboard.press("Enter")
    page.wait_for_selector("#answer:not([hidden])")


def test_the_scanner_page_signed_out_and_scanning(page: Any, server: dict[str, Any]) -> None:
    found = sign_in_and_scan(page, server)
    show_answer(page, service_code(server["app"], Path(server["keys_dir"])))
    found += violations(page)  # the green answer
    page.click("#answer-next")
    show_answer(page, "garbage")
    found += violations(page)  # the red one
    assert not found, "\n".join(found)


# -- text at 200% --------------------------------------------------------------------------


def zoom_text(page: Any) -> None:
    """The reader's text size at 200% (the pages size everything in rem)."""
    page.evaluate("document.documentElement.style.fontSize = '200%'")


def assert_inside_the_screen(page: Any, selector: str) -> None:
    locator = page.locator(selector)
    locator.scroll_into_view_if_needed()
    box = locator.bounding_box()
    assert box is not None, selector
    assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"] + 0.5, (selector, box)
    assert box["y"] >= 0 and box["y"] + box["height"] <= PHONE["height"] + 0.5, (selector, box)


def no_sideways_scroll(page: Any) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


def test_text_at_200_percent_keeps_the_qr_on_screen(page: Any, server: dict[str, Any]) -> None:
    log_in(page, server["resident"]["phone"])
    page.goto("/code")
    page.wait_for_selector("#qr svg")
    zoom_text(page)
    assert_inside_the_screen(page, "#qr svg")
    no_sideways_scroll(page)


def test_text_at_200_percent_keeps_the_answer_on_screen(page: Any, server: dict[str, Any]) -> None:
    sign_in_and_scan(page, server)
    zoom_text(page)
    no_sideways_scroll(page)
    show_answer(page, "garbage")
    assert page.locator("#answer").bounding_box() == {"x": 0, "y": 0, **PHONE}
    for part in (".answer-icon", ".answer-headline", ".answer-words"):
        assert_inside_the_screen(page, part)
    page.screenshot(path=f"/tmp/scanner_refused_200pct_{page.evaluate('document.documentElement.lang')}.png")
