"""The phone's side of device codes, through the Flask test client: what the pages, the service
worker and the offline shell are made of (the flow itself runs in Chromium: test_browser_device.py)."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import pytest
from helpers import EN, PROJECT, ZH, assert_self_contained, html, registration

from codeservice.web import history_view, i18n

STATIC = PROJECT / "codeservice" / "web" / "static"
VENDOR = STATIC / "vendor" / "qrcode-generator"
OUR_SCRIPTS = ("rsd.js", "device.js", "devices.js", "sw.js", "code.js")


def test_the_code_page_loads_the_device_scripts_in_order(logged_in: Any) -> None:
    page = html(logged_in.get("/code"))
    scripts = re.findall(r'<script src="([^"]+)"', page)
    assert scripts == [
        "/static/code.js",
        "/static/rsd.js",
        "/static/vendor/qrcode-generator/qrcode.js",
        "/static/device.js",
    ]
    assert '<link rel="manifest" href="/static/manifest.webmanifest">' in page
    assert 'data-devices-api="/api/v1/devices"' in page
    assert 'data-worker="/sw.js"' in page and 'data-worker-scope="/code"' in page
    assert 'id="clock"' in page


def test_the_device_owner_is_the_residents_and_names_no_one(client: Any) -> None:
    owners = []
    for _ in range(2):
        body = registration()
        assert client.post("/api/v1/residents", json=body).status_code == 201
        client.post(
            "/api/v1/session",
            json={"phone": body["phone"], "password": body["password"]},
        )
        first = re.search(
            r'data-owner="([0-9a-f]{32})"', html(client.get("/code"))
        ).group(1)
        again = re.search(
            r'data-owner="([0-9a-f]{32})"', html(client.get("/code"))
        ).group(1)
        assert first == again
        assert body["phone"] not in first and body["id_number"] not in first
        owners.append(first)
        client.delete("/api/v1/session")
    assert owners[0] != owners[1]


@pytest.mark.parametrize(
    "headers, words", [(ZH, "请向工作人员"), (EN, "Show this code")]
)
def test_the_offline_shell_holds_nothing_of_any_resident(
    logged_in: Any, resident: dict[str, Any], headers: Any, words: str
) -> None:
    response = logged_in.get("/code/shell", headers=headers)
    assert response.status_code == 200
    page = html(response)
    assert words in page
    for private in (
        "张*明",
        resident["phone"],
        resident["id_number"],
        "csrf",
        "data-owner",
        "<svg",
    ):
        assert private not in page, private
    assert 'data-shell="1"' in page and "/logout" not in page
    assert response.headers["Cache-Control"] == "no-store"
    assert_self_contained(page, "/code/shell")
    # Without a login it is the same page.
    assert (
        logged_in.application.test_client()
        .get("/code/shell", headers=headers)
        .status_code
        == 200
    )


def test_the_service_worker_is_served_from_the_root(client: Any) -> None:
    response = client.get("/sw.js")
    assert response.status_code == 200 and response.mimetype == "text/javascript"
    worker = response.get_data(as_text=True)
    response.close()
    # It caches the shell and static files only: never /code itself, nor the API.
    assert 'new URL("code/shell", base)' in worker
    cached = re.findall(r'new URL\("([^"]+)", base\)\.href', worker)
    assert cached and all(
        path == "code/shell" or path.startswith("static/") for path in cached
    ), cached
    for path in cached:
        asset = client.get("/" + path)
        assert asset.status_code == 200, path
        asset.close()


def test_the_manifest_opens_the_code_page(client: Any) -> None:
    response = client.get("/static/manifest.webmanifest")
    manifest = json.loads(response.get_data(as_text=True))
    response.close()
    assert (
        manifest["start_url"] == "../code" and manifest["scope"] == "../"
    )  # from /static/: /code and /
    assert (
        manifest["display"] == "standalone"
        and manifest["icons"][0]["src"] == "icon.svg"
    )


def test_pages_allow_their_own_manifest_and_worker_only(client: Any) -> None:
    policy = client.get("/login").headers["Content-Security-Policy"]
    assert "manifest-src 'self'" in policy and "worker-src 'self'" in policy
    assert "default-src 'none'" in policy and "unsafe" not in policy


def test_logging_out_clears_the_browsers_device_state(logged_in: Any) -> None:
    token = re.search(
        r'name="csrf_token" value="([^"]+)"', html(logged_in.get("/code"))
    ).group(1)
    response = logged_in.post("/logout", data={"csrf_token": token})
    assert response.status_code == 303
    assert response.headers["Clear-Site-Data"] == '"cache", "storage"'


def test_the_devices_page_needs_a_login(client: Any) -> None:
    response = client.get("/devices")
    assert response.status_code == 302 and response.location.endswith("/login")


@pytest.mark.parametrize("headers, title", [(ZH, "我的设备"), (EN, "My devices")])
def test_the_devices_page_in_both_languages(
    logged_in: Any, headers: Any, title: str
) -> None:
    page = html(logged_in.get("/devices", headers=headers))
    assert f"<h1>{title}</h1>" in page
    assert (
        'data-api="/api/v1/me/devices"' in page and 'src="/static/devices.js"' in page
    )
    assert_self_contained(page, "/devices")
    assert 'href="/devices"' in html(logged_in.get("/history", headers=headers))


def test_our_scripts_load_nothing_from_elsewhere() -> None:
    for name in OUR_SCRIPTS:
        text = (STATIC / name).read_text(encoding="utf-8")
        urls = set(re.findall(r"https?://[^\s\"')]+", text))
        assert urls <= {"http://www.w3.org/2000/svg"}, (
            name,
            urls,
        )  # an XML namespace, not a load
        assert (
            "importScripts" not in text
            and "import(" not in text
            and "eval(" not in text
        ), name
        assert "innerHTML" not in text, name


def test_the_vendored_qr_encoder_says_what_it_is() -> None:
    vendor = dict(
        line.split(": ", 1)
        for line in (VENDOR / "VENDOR.txt").read_text(encoding="utf-8").splitlines()
        if ": " in line
    )
    assert vendor["name"] == "qrcode-generator" and vendor["version"] == "2.0.4"
    assert vendor["licence"].startswith("MIT")
    assert (
        vendor["sha256 of qrcode.js"]
        == hashlib.sha256((VENDOR / "qrcode.js").read_bytes()).hexdigest()
    )
    assert "Permission is hereby granted" in (VENDOR / "LICENSE").read_text(
        encoding="utf-8"
    )
    assert "Copyright (c) 2009 Kazuhiko Arase" in (VENDOR / "qrcode.js").read_text(
        encoding="utf-8"
    )
    pyproject = (STATIC.parents[2] / "pyproject.toml").read_text(encoding="utf-8")
    assert '"static/vendor/*/*"' in pyproject  # installed with the package


@pytest.mark.parametrize(
    "form, zh, en",
    [
        ("online", "在线码", "Online code"),
        ("device", "设备码（离线生成）", "Device code (made offline)"),
        ("paper", "纸质码", "Paper code"),
        (None, "在线码", "Online code"),  # a record without a form is an online one
        ("<script>", "在线码", "Online code"),  # nothing else is shown as it is
    ],
)
def test_a_records_form_in_both_languages(form: Any, zh: str, en: str) -> None:
    assert history_view.form_text(form, "zh") == zh
    assert history_view.form_text(form, "en") == en


def test_the_history_shows_each_records_form(
    logged_in: Any, a_day: list[dict[str, Any]]
) -> None:
    page = html(logged_in.get("/history", headers=ZH))
    assert page.count('<dd class="entry-form">在线码</dd>') == len(a_day)
    assert "出示方式" in page
    assert "Presented as" in html(logged_in.get("/history", headers=EN))
    assert set(i18n.MESSAGES["zh"]) == set(i18n.MESSAGES["en"])
