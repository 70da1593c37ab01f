"""The mobile web pages through the Flask test client, on SQLite and PostgreSQL.

Forms are filled as a browser without JavaScript would: the CSRF token is
read from the page's hidden field and posted back.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from helpers import (
    DEMO_PASSWORD,
    EN,
    ZH,
    assert_self_contained,
    gb11643_id,
    html,
    registration,
)

from codeservice.web import i18n

CSRF_FIELD = re.compile(r'<input type="hidden" name="csrf_token" value="([^"]+)">')


def csrf_token(client: Any, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200, path
    match = CSRF_FIELD.search(html(response))
    assert match, f"no CSRF field on {path}"
    return match.group(1)


def submit(client: Any, path: str, data: dict[str, str], headers: dict[str, str] | None = None) -> Any:
    """Post a form with the token its page carries, as a browser would."""
    return client.post(path, data={**data, "csrf_token": csrf_token(client, path)}, headers=headers or ZH)


def form_register(client: Any, **overrides: Any) -> tuple[dict[str, Any], Any]:
    body = registration(**overrides)
    return body, submit(client, "/register", body)


def form_login(client: Any, phone: str, password: str = DEMO_PASSWORD, headers: dict[str, str] | None = None) -> Any:
    return submit(client, "/login", {"phone": phone, "password": password}, headers)


# -- language ------------------------------------------------------------------


def test_root_sends_visitors_to_login_and_residents_to_their_code(client: Any, resident: dict[str, Any]) -> None:
    response = client.get("/")
    assert response.status_code == 302 and response.location.endswith("/login")
    form_login(client, resident["phone"])
    response = client.get("/")
    assert response.status_code == 302 and response.location.endswith("/code")


@pytest.mark.parametrize("path", ["/login", "/register"])
def test_pages_are_chinese_by_default(client: Any, path: str) -> None:
    for headers in ({}, ZH, {"Accept-Language": "fr-FR"}):
        page = html(client.get(path, headers=headers))
        assert '<html lang="zh-Hans">' in page
        assert "登录" in page and "手机号码" in page
        assert '<meta name="viewport"' in page and '<meta name="theme-color"' in page


@pytest.mark.parametrize("path", ["/login", "/register"])
def test_pages_are_english_when_the_browser_prefers_it(client: Any, path: str) -> None:
    page = html(client.get(path, headers=EN))
    assert '<html lang="en">' in page
    assert "Log in" in page and "Mobile phone" in page
    assert "手机号码" not in page
    # Chinese preferred over English: Chinese.
    page = html(client.get(path, headers={"Accept-Language": "zh-TW,zh;q=0.9,en;q=0.8"}))
    assert '<html lang="zh-Hans">' in page


def test_language_toggle_sets_a_cookie_and_returns_to_the_page(client: Any) -> None:
    page = html(client.get("/login", headers=ZH))
    assert 'href="/lang/en?next=/login"' in page
    response = client.get("/lang/en?next=/login")
    assert response.status_code == 302 and response.location == "/login"
    cookie = client.get_cookie("lang")
    assert cookie is not None and cookie.value == "en" and cookie.http_only
    page = html(client.get("/login", headers=ZH))  # the cookie wins over the header
    assert '<html lang="en">' in page and "Log in" in page
    assert 'href="/lang/zh?next=/login"' in page
    client.get("/lang/zh?next=/login")
    assert '<html lang="zh-Hans">' in html(client.get("/login", headers=EN))


@pytest.mark.parametrize(
    "target", ["//evil.example/", "https://evil.example/", "/\\evil.example", "/\t/evil.example", "login", ""]
)
def test_language_toggle_does_not_redirect_elsewhere(client: Any, target: str) -> None:
    response = client.get("/lang/en", query_string={"next": target})
    assert response.status_code == 302 and response.location == "/"


def test_an_unknown_language_changes_nothing(client: Any) -> None:
    client.get("/lang/fr?next=/login")
    assert client.get_cookie("lang") is None
    assert '<html lang="zh-Hans">' in html(client.get("/login"))


def test_both_languages_have_every_string() -> None:
    assert set(i18n.MESSAGES["zh"]) == set(i18n.MESSAGES["en"])
    for lang, catalogue in i18n.MESSAGES.items():
        for key, text in catalogue.items():
            assert text.strip(), f"{lang}:{key} is empty"


# -- registration ----------------------------------------------------------------


def test_register_by_form_logs_in_and_shows_the_code(client: Any) -> None:
    page = html(client.get("/register"))
    for field in ("name", "id_type", "id_number", "phone", "password"):
        assert f'name="{field}"' in page
    assert '<option value="passport"' in page and "护照" in page
    _body, response = form_register(client)
    assert response.status_code == 303 and response.location.endswith("/code")
    page = html(client.get("/code"))
    assert "<svg" in page and "张*明" in page


def test_register_without_csrf_token_is_refused(client: Any) -> None:
    csrf_token(client, "/register")  # a session with a token exists, but is not sent
    body = registration()
    response = client.post("/register", data=body, headers=ZH)
    assert response.status_code == 400
    page = html(response)
    assert "表单已过期或无效" in page and "<form" not in page
    response = client.post("/register", data={**body, "csrf_token": "x" * 43}, headers=EN)
    assert response.status_code == 400 and "This form has expired" in html(response)
    # Nothing was registered: the phone is free.
    _, response = form_register(client, phone=body["phone"], id_number=body["id_number"])
    assert response.status_code == 303


def test_csrf_token_from_another_session_is_refused(app: Any) -> None:
    first, second = app.test_client(), app.test_client()
    token = csrf_token(first, "/login")
    csrf_token(second, "/login")
    response = second.post("/login", data={"phone": "13800000000", "password": "x", "csrf_token": token})
    assert response.status_code == 400


def test_bad_id_number_shows_a_localized_error_and_keeps_the_values(client: Any) -> None:
    good = registration()["id_number"]
    wrong_check = good[:17] + ("0" if good[17] != "0" else "1")
    body = registration(name="李小龙", id_number=wrong_check)
    response = submit(client, "/register", body)
    assert response.status_code == 422
    page = html(response)
    assert "证件号码无效" in page
    assert 'value="李小龙"' in page and f'value="{body["phone"]}"' in page and f'value="{wrong_check}"' in page
    assert DEMO_PASSWORD not in page
    assert 'aria-invalid="true" aria-describedby="id_number-error"' in page
    assert '<option value="resident_id" selected>' in page

    response = submit(client, "/register", body, headers=EN)
    assert response.status_code == 422
    assert "This ID number is not valid" in html(response)


def test_entered_values_are_escaped(client: Any) -> None:
    response = submit(client, "/register", registration(name='<script>alert(1)</script>"', phone="1"))
    assert response.status_code == 422
    page = html(response)
    assert "<script>alert(1)" not in page
    assert 'value="&lt;script&gt;alert(1)&lt;/script&gt;&#34;"' in page


@pytest.mark.parametrize(
    ("overrides", "zh", "en"),
    [
        ({"phone": "12345"}, "手机号码无效", "This phone number is not valid"),
        ({"name": "   "}, "请填写姓名", "Enter your name"),
        ({"password": "short"}, "密码太简单", "This password is too weak"),
        ({"id_type": "library_card"}, "请选择证件类型", "Choose an ID type"),
    ],
)
def test_each_registration_error_has_its_own_message(client: Any, overrides: dict[str, str], zh: str, en: str) -> None:
    body = registration(**overrides)
    response = submit(client, "/register", body)
    assert response.status_code == 422 and zh in html(response)
    response = submit(client, "/register", body, headers=EN)
    assert response.status_code == 422 and en in html(response)


def test_a_taken_phone_or_identity_says_so(client: Any, resident: dict[str, Any]) -> None:
    response = submit(client, "/register", registration(phone=resident["phone"]))
    assert response.status_code == 409 and "该手机号码已注册" in html(response)
    response = submit(client, "/register", registration(id_number=resident["id_number"]))
    assert response.status_code == 409 and "该证件已注册" in html(response)


# -- login and logout ------------------------------------------------------------


def test_login_by_form(client: Any, resident: dict[str, Any]) -> None:
    response = form_login(client, resident["phone"])
    assert response.status_code == 303 and response.location.endswith("/code")
    assert client.get("/code").status_code == 200
    # Logged in, the login page leads to the code.
    response = client.get("/login")
    assert response.status_code == 302 and response.location.endswith("/code")


def test_wrong_password_says_so_and_keeps_the_phone(client: Any, resident: dict[str, Any]) -> None:
    response = form_login(client, resident["phone"], "not the password at all")
    assert response.status_code == 401
    page = html(response)
    assert "手机号码或密码错误" in page and f'value="{resident["phone"]}"' in page
    assert "not the password at all" not in page
    response = form_login(client, resident["phone"], "not the password at all", headers=EN)
    assert "The phone number or the password is wrong" in html(response)
    assert client.get("/code").status_code == 302


def test_repeated_failures_give_a_cool_down_message(client: Any, resident: dict[str, Any]) -> None:
    for _ in range(5):
        assert form_login(client, resident["phone"], "wrong password 123").status_code == 401
    response = form_login(client, resident["phone"])  # even the right password waits
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) > 0
    assert "尝试次数过多" in html(response) and "分钟后再试" in html(response)
    response = form_login(client, resident["phone"], headers=EN)
    assert "Too many attempts" in html(response)


def test_logout_is_a_post_with_csrf(client: Any, resident: dict[str, Any]) -> None:
    form_login(client, resident["phone"])
    page = html(client.get("/code"))
    assert 'action="/logout"' in page and 'method="post"' in page
    assert client.post("/logout").status_code == 400  # no token: still logged in
    assert client.get("/code").status_code == 200
    assert client.get("/logout").status_code == 405
    response = client.post("/logout", data={"csrf_token": csrf_token(client, "/code")})
    assert response.status_code == 303 and response.location.endswith("/login")
    assert "您已退出登录" in html(client.get("/login"))
    assert client.get("/code").status_code == 302


# -- the code page ---------------------------------------------------------------


@pytest.mark.parametrize("path", ["/code", "/history"])
def test_resident_pages_need_a_login(client: Any, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 302 and response.location.endswith("/login")


def test_code_page_shows_the_code_and_masked_name_only(client: Any, resident: dict[str, Any]) -> None:
    form_login(client, resident["phone"])
    response = client.get("/code")
    assert response.status_code == 200
    page = html(response)
    assert "<svg" in page and 'viewBox="0 0 ' in page
    assert "张*明" in page
    assert resident["name"] not in page
    assert resident["phone"] not in page
    assert resident["id_number"] not in page
    assert '<meta name="theme-color"' in page and 'name="viewport"' in page
    assert 'src="/static/code.js"' in page and 'id="refresh"' in page
    expires_at = int(re.search(r'data-expires-at="(\d+)"', page).group(1))
    refresh_after = int(re.search(r'data-refresh-after="(\d+)"', page).group(1))
    server_now = int(re.search(r'data-server-now="(\d+)"', page).group(1))
    assert server_now < refresh_after < expires_at <= server_now + 300
    assert "秒" in page and "刷新二维码" in page
    assert response.headers["Cache-Control"] == "no-store"


def test_code_page_in_english(client: Any, resident: dict[str, Any]) -> None:
    form_login(client, resident["phone"])
    page = html(client.get("/code", headers=EN))
    assert "Refresh code" in page and "My service code" in page and "<svg" in page


def test_a_senior_sees_the_category(client: Any) -> None:
    form_register(client, id_number=gb11643_id("310104194501010012"[:17]))
    page = html(client.get("/code"))
    assert '<span class="badge" id="category">长者</span>' in page
    assert "Senior" in html(client.get("/code", headers=EN))


def test_a_revoked_resident_sees_no_code(app: Any, client: Any, resident: dict[str, Any]) -> None:
    from codeservice import db
    from codeservice.models import Resident

    form_login(client, resident["phone"])
    with app.app_context():
        session = db.session()
        for row in session.query(Resident).all():
            row.revoked_at = datetime.now(UTC)
        session.commit()
    response = client.get("/code")
    assert response.status_code == 403
    page = html(response)
    assert "服务码已停用" in page and "<svg" not in page


def test_history_placeholder_in_both_languages(client: Any, resident: dict[str, Any]) -> None:
    form_login(client, resident["phone"])
    assert "使用记录将显示在这里" in html(client.get("/history"))
    assert "usage history will appear here" in html(client.get("/history", headers=EN))


# -- every page ------------------------------------------------------------------


def test_no_inline_script_and_nothing_from_outside(client: Any, resident: dict[str, Any]) -> None:
    pages = {}
    for headers in (ZH, EN):
        for path in ("/login", "/register"):
            pages[f"{path} {headers}"] = html(client.get(path, headers=headers))
        pages["register error"] = html(submit(client, "/register", registration(phone="1"), headers))
        pages["login error"] = html(form_login(client, resident["phone"], "wrong password 123", headers))
        pages["csrf error"] = html(client.post("/login", data={}, headers=headers))
    form_login(client, resident["phone"])
    for headers in (ZH, EN):
        pages[f"/code {headers}"] = html(client.get("/code", headers=headers))
        pages[f"/history {headers}"] = html(client.get("/history", headers=headers))
    for where, page in pages.items():
        assert page.startswith("<!doctype html>"), where
        assert_self_contained(page, where)


def test_pages_carry_a_strict_content_security_policy(client: Any) -> None:
    response = client.get("/login")
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"


def test_static_files_are_served_by_the_service(client: Any) -> None:
    script = client.get("/static/code.js")
    assert script.status_code == 200 and "javascript" in script.mimetype
    assert "same-origin" in script.get_data(as_text=True)
    style = client.get("/static/app.css")
    assert style.status_code == 200 and style.mimetype == "text/css"
    for asset in (script, style):
        text = asset.get_data(as_text=True)
        assert "http://" not in text and "https://" not in text and "@import" not in text
        asset.close()
