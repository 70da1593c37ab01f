"""/scanner's session and calls (SQLite and PostgreSQL): sign-in, the cookie, CSRF, revocation, the verify path.

The page itself in a browser: test_browser_scanner.py.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from helpers import (
    CSRF_FIELD,
    EN,
    ZH,
    add_scanner,
    assert_self_contained,
    error,
    html,
    scanner_sign_in,
    scanner_verify,
    service_code,
)
from offline_minting import a_device_code, a_paper_code

from codeservice.keystore import KeyStore
from codeservice.usage import local_midnight


@pytest.fixture
def scanner(runner: Any) -> tuple[int, str]:
    """A museum door's scanner (venue and transit): its id and key."""
    return add_scanner(runner, venue="museum", device="door-1", scenes="venue,transit")


@pytest.fixture
def signed_in(client: Any, scanner: tuple[int, str]) -> str:
    """The client signed in at /scanner; the session's CSRF token."""
    return scanner_sign_in(client, scanner[1])


def scanner_cookie(response: Any) -> str:
    cookies = [value for value in response.headers.getlist("Set-Cookie") if "codeservice_scanner=" in value]
    assert len(cookies) == 1, response.headers.getlist("Set-Cookie")
    return cookies[0]


def sign_in_form(client: Any) -> str:
    match = CSRF_FIELD.search(client.get("/scanner").get_data(as_text=True))
    assert match
    return match.group(1)


def test_signed_out_the_page_is_the_sign_in_form(client: Any) -> None:
    page = client.get("/scanner").get_data(as_text=True)
    assert 'action="/scanner/session"' in page and 'method="post"' in page
    assert 'name="key"' in page and 'type="password"' in page


def test_both_pages_are_self_contained_in_both_languages(client: Any, scanner: tuple[int, str]) -> None:
    """No inline script, handler or style (the pages' strict CSP), nothing from outside; Chinese and English."""
    pages = {f"signed out {lang}": client.get("/scanner", headers=lang) for lang in (ZH, EN)}
    scanner_sign_in(client, scanner[1])
    pages.update({f"scanning {lang}": client.get("/scanner", headers=lang) for lang in (ZH, EN)})
    for where, response in pages.items():
        page = html(response)
        assert page.startswith("<!doctype html>"), where
        assert_self_contained(page, where)
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]
        assert response.headers["Cache-Control"] == "no-store"
    assert "扫码核验" in html(pages[f"scanning {ZH}"]) and "Scanner" in html(pages[f"scanning {EN}"])
    assert "/static/vendor/jsqr/jsQR.js" in html(pages[f"scanning {EN}"])


def test_the_key_becomes_an_httponly_strict_cookie_of_its_own(client: Any, scanner: tuple[int, str]) -> None:
    csrf = sign_in_form(client)
    response = client.post("/scanner/session", data={"key": scanner[1], "csrf_token": csrf})
    assert response.status_code == 303 and response.headers["Location"].endswith("/scanner")
    cookie = scanner_cookie(response)
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/scanner" in cookie
    assert scanner[1] not in cookie and scanner[1] not in response.headers["Location"]
    # Not the resident session: that cookie holds no scanner.
    assert not any(scanner[1] in value for value in response.headers.getlist("Set-Cookie"))


def test_outside_development_the_cookie_is_secure_and_prefixed(app: Any, scanner: tuple[int, str]) -> None:
    app.config["SESSION_COOKIE_SECURE"] = True
    client = app.test_client()
    csrf = sign_in_form(client)
    response = client.post("/scanner/session", data={"key": scanner[1], "csrf_token": csrf})
    cookie = scanner_cookie(response)
    assert cookie.startswith("__Secure-codeservice_scanner=") and "Secure" in cookie


def test_signing_in_needs_the_forms_csrf_token(client: Any, scanner: tuple[int, str]) -> None:
    client.get("/scanner")
    response = client.post("/scanner/session", data={"key": scanner[1]})
    assert response.status_code == 400
    assert not any("codeservice_scanner=" in value for value in response.headers.getlist("Set-Cookie"))


@pytest.mark.parametrize("key", ["", "csk_unknown", "x" * 500])
def test_an_unknown_key_is_the_form_again_with_401(client: Any, key: str) -> None:
    csrf = sign_in_form(client)
    response = client.post("/scanner/session", data={"key": key, "csrf_token": csrf})
    assert response.status_code == 401
    assert 'name="key"' in response.get_data(as_text=True)


def test_a_revoked_key_cannot_sign_in(client: Any, runner: Any, scanner: tuple[int, str]) -> None:
    runner.invoke(args=["scanners", "revoke", str(scanner[0])])
    csrf = sign_in_form(client)
    assert client.post("/scanner/session", data={"key": scanner[1], "csrf_token": csrf}).status_code == 401


def test_signed_in_the_page_offers_the_keys_scenes_with_their_help(client: Any, signed_in: str) -> None:
    page = client.get("/scanner", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert re.findall(r'<option value="([a-z]+)"', page) == ["transit", "venue", "in", "out"]
    assert 'data-scene="clinic"' not in page
    assert "station (string), direction (in or out)" in page  # the scene's own context_help
    assert "museum · door-1" in page


def test_verify_takes_the_api_body_and_answers_in_words(
    app: Any, client: Any, signed_in: str, keys_dir: Path
) -> None:
    token = service_code(app, keys_dir)
    response = scanner_verify(client, signed_in, token, "venue", {}, **{"Accept-Language": "en"})
    assert response.status_code == 200
    body = response.get_json()
    assert body["decision"]["code"] == "accepted" and body["decision"]["ok"] is True
    assert body["answer"]["ok"] is True and body["answer"]["headline"] == "Accepted"
    assert body["counts"] == {"accepted": 1, "refused": 0}
    again = scanner_verify(client, signed_in, token, "venue", {}, **{"Accept-Language": "zh"}).get_json()
    assert again["decision"]["code"] == "replayed"
    assert again["answer"] == {
        "ok": False,
        "headline": "未通过",
        "words": "此码已使用过（重复扫码）",
        "scene_words": None,
        "detail": [],
        "check_id": None,
        "check_id_words": None,
    }
    assert again["counts"] == {"accepted": 1, "refused": 1}


def test_the_usage_record_names_the_scanners_venue_and_device(
    app: Any, client: Any, signed_in: str, keys_dir: Path
) -> None:
    from sqlalchemy import select

    from codeservice import db
    from codeservice.models import UsageRecord

    token = service_code(app, keys_dir)
    context = {"station": "人民广场", "direction": "in"}
    assert scanner_verify(client, signed_in, token, "transit", context).get_json()["decision"]["ok"]
    with app.app_context():
        row = db.session().scalars(select(UsageRecord)).one()
    assert (row.venue_id, row.device_id, row.online) == ("museum", "door-1", True)


def test_a_scene_the_key_does_not_name_is_403(app: Any, client: Any, signed_in: str, keys_dir: Path) -> None:
    response = scanner_verify(client, signed_in, service_code(app, keys_dir), "clinic", {"department": "x"})
    error(response, 403, "scene_not_permitted")


def test_verify_needs_the_sessions_csrf_token(app: Any, client: Any, signed_in: str, keys_dir: Path) -> None:
    token = service_code(app, keys_dir)
    error(scanner_verify(client, None, token, "venue"), 403, "csrf_failed")
    error(scanner_verify(client, "not-the-token", token, "venue"), 403, "csrf_failed")


def test_verify_without_a_session_is_401(app: Any, client: Any, keys_dir: Path) -> None:
    error(scanner_verify(client, "anything", service_code(app, keys_dir), "venue"), 403, "csrf_failed")
    client.set_cookie("codeservice_scanner", "forged", path="/scanner")
    error(scanner_verify(client, "anything", service_code(app, keys_dir), "venue"), 403, "csrf_failed")


def test_a_bearer_key_does_not_stand_for_the_session(
    app: Any, client: Any, scanner: tuple[int, str], keys_dir: Path
) -> None:
    response = scanner_verify(
        client, "x", service_code(app, keys_dir), "venue", Authorization=f"Bearer {scanner[1]}"
    )
    error(response, 403, "csrf_failed")


def test_a_bad_body_is_the_apis_400(client: Any, signed_in: str) -> None:
    response = client.post("/scanner/verify", json={"scene": "venue"}, headers={"X-CSRF-Token": signed_in})
    error(response, 400, "missing_field")
    response = client.post("/scanner/verify", data="{", content_type="application/json",
                           headers={"X-CSRF-Token": signed_in})
    error(response, 400, "invalid_json")


def test_revoking_the_scanner_ends_its_session(
    app: Any, client: Any, runner: Any, scanner: tuple[int, str], signed_in: str, keys_dir: Path
) -> None:
    runner.invoke(args=["scanners", "revoke", str(scanner[0])])
    error(scanner_verify(client, signed_in, service_code(app, keys_dir), "venue"), 401, "invalid_scanner_key")
    page = client.get("/scanner")
    assert 'name="key"' in page.get_data(as_text=True)
    assert "Max-Age=0" in scanner_cookie(page)


def test_signing_out_clears_the_cookie(client: Any, signed_in: str) -> None:
    response = client.post("/scanner/logout", data={"csrf_token": signed_in})
    assert response.status_code == 200 and "Max-Age=0" in scanner_cookie(response)
    assert 'name="key"' in client.get("/scanner").get_data(as_text=True)


def test_a_staffed_scanner_accepts_paper_with_the_hint_an_unstaffed_one_does_not(
    app: Any, client: Any, runner: Any, keys_dir: Path
) -> None:
    now = int(time.time())
    signer = KeyStore(keys_dir).signer()
    paper = a_paper_code(signer, now=now)  # type: ignore[arg-type]
    result = runner.invoke(
        args=["scanners", "add", "--venue", "desk-1", "--device", "desk", "--scenes", "venue", "--attended"]
    )
    desk_key = result.output.strip().splitlines()[-1]
    gate_key = add_scanner(runner, venue="gate-1", device="gate", scenes="venue")[1]

    gate = scanner_verify(client, scanner_sign_in(client, gate_key), paper, "venue").get_json()
    assert gate["decision"]["code"] == "attendant_required" and gate["answer"]["check_id"] is None

    desk = app.test_client()
    answer = scanner_verify(desk, scanner_sign_in(desk, desk_key), paper, "venue", **{"Accept-Language": "en"})
    body = answer.get_json()
    assert body["decision"]["code"] == "accepted" and body["decision"]["form"] == "paper"
    assert body["answer"]["check_id_words"] == "Check the ID card"
    assert body["answer"]["check_id"] == [
        {"label": "Name", "value": "张*明"},
        {"label": "Birthday (MMDD)", "value": "0521"},
        {"label": "ID number ends with", "value": "123X"},
    ]


def test_a_device_code_is_accepted_then_replayed(app: Any, client: Any, signed_in: str, keys_dir: Path) -> None:
    now = int(time.time())
    code = a_device_code(KeyStore(keys_dir).signer(), now=now, t=now - 2)  # type: ignore[arg-type]
    assert scanner_verify(client, signed_in, code, "venue").get_json()["decision"]["form"] == "device"
    assert scanner_verify(client, signed_in, code, "venue").get_json()["decision"]["code"] == "replayed"


def test_the_counts_are_this_scanners_since_local_midnight(
    app: Any, client: Any, runner: Any, signed_in: str, keys_dir: Path
) -> None:
    other_key = add_scanner(runner, venue="museum", device="door-2", scenes="venue")[1]
    other = app.test_client()
    scanner_verify(other, scanner_sign_in(other, other_key), service_code(app, keys_dir), "venue")
    body = scanner_verify(client, signed_in, "garbage", "venue").get_json()
    assert body["counts"] == {"accepted": 0, "refused": 1}
    page = client.get("/scanner", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "0 accepted, 1 refused" in page  # a reload keeps them


def test_local_midnight_is_china_standard_time() -> None:
    # 23:30 and 01:00 in Beijing: the day began at 16:00 UTC the day before.
    assert local_midnight(datetime(2026, 11, 18, 15, 30, tzinfo=UTC)) == datetime(2026, 11, 17, 16, 0, tzinfo=UTC)
    assert local_midnight(datetime(2026, 11, 18, 17, 0, tzinfo=UTC)) == datetime(2026, 11, 18, 16, 0, tzinfo=UTC)


def test_an_empty_upload_is_accepted_as_nothing(client: Any, scanner: tuple[int, str]) -> None:
    """A sync with an empty outbox still reports in (its health header): the endpoint takes it."""
    response = client.post(
        "/api/v1/usage",
        json={"records": []},
        headers={
            "Authorization": f"Bearer {scanner[1]}",
            "Codeservice-Verifier-Status": "keys-age=120, revocations-age=30, clock-offset=-2, pending=0",
        },
    )
    assert response.status_code == 200 and response.get_json() == {"accepted": 0, "duplicates": 0}
