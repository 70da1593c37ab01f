"""The operator console in a real browser: Chromium (Playwright) against a real server.

An operator made with ``operators add`` logs in with the first password, is
asked for a new one before anything else, opens the console for a day of
usage uploaded by a gate, a museum door and a clinic desk, and finds each
chart drawn: the stacked bars of scans per hour by scene, their legend, the
text alternative; in Chinese, then in English. A CSP violation or any
script error fails the test.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from helpers import (
    CONSOLE_PASSWORD,
    accepted,
    add_operator,
    add_scanner,
    browser_config,
    iso,
    local_moment,
    record,
    served_app,
)

SCREENSHOT = Path("/tmp/console_page.png")


@pytest.fixture
def server(tmp_path: Path, keys_dir: Path) -> Iterator[dict[str, Any]]:
    with served_app(browser_config(tmp_path, keys_dir)) as running:
        yield running


def test_operator_logs_in_and_sees_the_charts(browser: Any, server: dict[str, Any]) -> None:
    app = server["app"]
    runner = app.test_cli_runner()
    first_password = add_operator(runner, "ops")
    day = datetime.now(ZoneInfo("Asia/Shanghai")).date() - timedelta(days=1)
    uploads = {
        ("metro-1", "gate-1", "transit"): [
            record(decided_at=iso(local_moment(day, 8, 5)),
                   detail={"station": "人民广场", "direction": "in", "line": "1", "fare_cents": None}),
            record(decided_at=iso(local_moment(day, 9, 5)), ok=False, code="passback",
                   detail={"station": "人民广场", "direction": "in", "line": "1", "fare_cents": None}),
        ],
        ("museum-1", "door-1", "venue"): [
            record(decided_at=iso(local_moment(day, 9, 30)), scene="venue", detail={"party_size": 2, "capacity": 50}),
        ],
        ("clinic-1", "desk-1", "clinic"): [
            record(decided_at=iso(local_moment(day, 10, 0)), scene="clinic", detail={"department": "内科"}),
        ],
    }
    client = app.test_client()
    from helpers import upload

    for (venue, device, scenes), records in uploads.items():
        _, key = add_scanner(runner, venue=venue, device=device, scenes=scenes)
        assert accepted(upload(client, key, records)) == (len(records), 0)

    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=server["url"], locale="zh-CN")
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        page.goto("/console")
        page.wait_for_url("**/console/login")
        page.fill("#username", "ops")
        page.fill("#password", first_password)
        page.click("button[type=submit]")
        page.wait_for_url("**/console/password")  # the first login: a new password before anything else
        page.fill("#current_password", first_password)
        page.fill("#new_password", CONSOLE_PASSWORD)
        page.click("form[action$='/console/password'] button[type=submit]")
        page.wait_for_url("**/console")
        page.fill("#day", day.isoformat())
        page.click("#filters button[type=submit]")
        page.wait_for_url(f"**/console?day={day.isoformat()}*")

        chart = page.locator("#chart-scans-by-hour")
        # 08: transit; 09: transit, venue; 10: clinic -> four stacked segments, three scenes in the legend
        assert chart.locator("rect.bar").count() == 4
        assert chart.locator(".legend-entry").count() == 3
        assert chart.locator(".legend-entry").all_text_contents() == ["医疗机构", "公共交通", "文化场馆"]
        assert "公共交通" in chart.locator("rect.bar").first.locator("title").text_content() or ""
        assert page.locator("#chart-outcome-by-hour rect.bar").count() == 4  # 08 ok; 09 ok and refused; 10 ok
        assert page.locator("#chart-outcome-by-hour .legend-entry").count() == 2
        assert page.locator("#chart-refusals rect.bar").count() == 1
        assert page.locator("#chart-forms rect.bar").count() == 1  # online only
        assert page.locator("#chart-capacity circle.point").count() == 24
        assert page.locator("#chart-clinic rect.bar").count() == 1
        assert page.locator("#total-scans").inner_text() == "4"
        assert page.locator("#scanner-table tbody tr").count() == 3
        page.screenshot(path=str(SCREENSHOT), full_page=True)

        page.click("#lang-toggle")
        page.wait_for_url(f"**/console?day={day.isoformat()}*")
        chart = page.locator("#chart-scans-by-hour")
        assert chart.locator("rect.bar").count() == 4
        assert chart.locator(".legend-entry").all_text_contents() == ["Clinic", "Transit", "Venue"]
        assert page.locator("#chart-scans-by-hour-heading").inner_text() == "Scans per hour, by scene"
        assert page.locator("html").get_attribute("lang") == "en"
    finally:
        context.close()
    assert errors == []
