"""The login cool-down cannot be turned against a resident: device cookies (OWASP).

OWASP, "Slow Down Online Guessing Attacks with Device Cookies": a browser
that has logged in to an account holds a signed device cookie for it, and is
judged by that cookie's own failures alone; every other client ("untrusted")
meets the account's cool-down. So a stranger who hammers a phone number locks
out only the clients that never logged in to it, and stays locked out
himself, while the owner's browser still logs in.

Every test runs on SQLite and on PostgreSQL (conftest), through both login
paths: ``POST /api/v1/session`` and the web form ``POST /login``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers import DEMO_PASSWORD, registration

from codeservice import create_app, db, residents
from codeservice.context import data_keys
from codeservice.errors import BadCredentials, TooManyAttempts

DEVICE_COOKIE = "codeservice_device"  # the development name; production's is __Host-codeservice_device
WRONG_PASSWORD = "not the password at all"
OWNER = {"REMOTE_ADDR": "198.51.100.7"}
ATTACKER = {"REMOTE_ADDR": "203.0.113.66"}
CSRF_FIELD = re.compile(r'<input type="hidden" name="csrf_token" value="([^"]+)">')

LogIn = Callable[..., Any]


def api_log_in(client: Any, phone: str, password: str = DEMO_PASSWORD, address: dict[str, str] = OWNER) -> Any:
    return client.post("/api/v1/session", json={"phone": phone, "password": password}, environ_base=address)


def form_log_in(client: Any, phone: str, password: str = DEMO_PASSWORD, address: dict[str, str] = OWNER) -> Any:
    """The login form, as a browser fills it (logged out first: a logged-in browser is sent to /code)."""
    client.delete("/api/v1/session", environ_base=address)
    page = client.get("/login", environ_base=address).get_data(as_text=True)
    match = CSRF_FIELD.search(page)
    assert match, "no CSRF field on /login"
    data = {"phone": phone, "password": password, "csrf_token": match.group(1)}
    return client.post("/login", data=data, environ_base=address)


@pytest.fixture(params=["api", "form"])
def log_in(request: pytest.FixtureRequest) -> LogIn:
    """One login path: the JSON API, or the web form (with its CSRF token)."""
    return api_log_in if request.param == "api" else form_log_in


def logged_in_status(response: Any) -> int:
    """200 for a login that worked, whichever path (the form answers 303 to /code)."""
    if response.status_code == 303:
        assert response.location.endswith("/code")
        return 200
    return int(response.status_code)


def hammer(app: Any, log_in: LogIn, phone: str) -> Any:
    """A stranger, from an address of his own and without any cookie, guesses until locked out."""
    attacker = app.test_client()
    for _ in range(5):
        assert log_in(attacker, phone, WRONG_PASSWORD, ATTACKER).status_code == 401
    assert log_in(attacker, phone, WRONG_PASSWORD, ATTACKER).status_code == 429
    return attacker


def device_cookie(client: Any) -> str:
    cookie = client.get_cookie(DEVICE_COOKIE)
    assert cookie is not None, "no device cookie was set at the login"
    return str(cookie.value)


# -- the attack ------------------------------------------------------------------------


def test_a_stranger_cannot_lock_the_owner_out_of_a_browser_they_logged_in_from(
    app: Any, log_in: LogIn, resident: dict[str, Any]
) -> None:
    owner = app.test_client()
    assert logged_in_status(log_in(owner, resident["phone"])) == 200
    owner.delete("/api/v1/session")  # logged out: the browser is still one the owner used

    attacker = hammer(app, log_in, resident["phone"])

    # The owner's browser logs in with the right password, whatever the stranger did.
    assert logged_in_status(log_in(owner, resident["phone"])) == 200
    assert owner.get("/api/v1/code").status_code == 200
    # The stranger stays locked out, even with the right password...
    response = log_in(attacker, resident["phone"], DEMO_PASSWORD, ATTACKER)
    assert response.status_code == 429 and 1 <= int(response.headers["Retry-After"]) <= 900
    # ...and so does every other browser that never logged in to this phone.
    assert log_in(app.test_client(), resident["phone"], DEMO_PASSWORD, OWNER).status_code == 429


def test_the_owners_login_does_not_lift_the_lockout_for_strangers(
    app: Any, log_in: LogIn, resident: dict[str, Any]
) -> None:
    owner = app.test_client()
    assert logged_in_status(log_in(owner, resident["phone"])) == 200
    attacker = hammer(app, log_in, resident["phone"])
    assert logged_in_status(log_in(owner, resident["phone"])) == 200
    assert log_in(attacker, resident["phone"], WRONG_PASSWORD, ATTACKER).status_code == 429


def test_the_api_answer_for_a_locked_out_stranger_keeps_its_code(app: Any, resident: dict[str, Any]) -> None:
    attacker = hammer(app, api_log_in, resident["phone"])
    response = api_log_in(attacker, resident["phone"], DEMO_PASSWORD, ATTACKER)
    assert response.status_code == 429
    assert response.get_json()["error"]["code"] == "too_many_attempts"
    assert 890 <= int(response.headers["Retry-After"]) <= 900


def test_registering_in_the_browser_makes_it_a_known_one(app: Any) -> None:
    """The web form logs in at registration: that browser gets its device cookie then."""
    browser, body = app.test_client(), registration()
    page = browser.get("/register", environ_base=OWNER).get_data(as_text=True)
    token = CSRF_FIELD.search(page).group(1)  # type: ignore[union-attr]
    response = browser.post("/register", data={**body, "csrf_token": token}, environ_base=OWNER)
    assert response.status_code == 303
    hammer(app, api_log_in, body["phone"])
    assert logged_in_status(form_log_in(browser, body["phone"])) == 200


# -- cookies that do not exempt ------------------------------------------------------


def tampered(value: str) -> str:
    return value[:-1] + ("0" if value[-1] != "0" else "1")


FORGERIES: dict[str, Callable[[str, str], str]] = {
    "tampered signature": lambda own, other: tampered(own),
    "tampered nonce": lambda own, other: ("A" if own[0] != "A" else "B") + own[1:],
    "another phone's cookie": lambda own, other: other,
    "made up": lambda own, other: "x" * 22 + "." + "0" * 64,
    "empty": lambda own, other: "",
    "garbage": lambda own, other: "%00\u00e9;" + "x" * 3000,
}


@pytest.mark.parametrize("forgery", list(FORGERIES))
def test_a_forged_or_foreign_device_cookie_gives_no_exemption(
    app: Any, log_in: LogIn, resident: dict[str, Any], forgery: str
) -> None:
    owner, neighbour = app.test_client(), app.test_client()
    assert logged_in_status(log_in(owner, resident["phone"])) == 200
    other = registration()
    assert neighbour.post("/api/v1/residents", json=other).status_code == 201
    assert logged_in_status(log_in(neighbour, other["phone"])) == 200

    attacker = hammer(app, log_in, resident["phone"])
    attacker.set_cookie(DEVICE_COOKIE, FORGERIES[forgery](device_cookie(owner), device_cookie(neighbour)))
    response = log_in(attacker, resident["phone"], DEMO_PASSWORD, ATTACKER)
    assert response.status_code == 429
    assert "Set-Cookie" not in response.headers


def test_a_copied_device_cookie_is_not_tied_to_the_address(app: Any, log_in: LogIn, resident: dict[str, Any]) -> None:
    """The cookie, not the address, is what the owner's browser is known by (a phone changes networks)."""
    owner = app.test_client()
    assert logged_in_status(log_in(owner, resident["phone"])) == 200
    hammer(app, log_in, resident["phone"])
    assert logged_in_status(log_in(owner, resident["phone"], DEMO_PASSWORD, ATTACKER)) == 200


# -- the device cookie's own cool-down ------------------------------------------------


def test_the_device_cookie_locks_after_its_own_failures(app: Any, log_in: LogIn, resident: dict[str, Any]) -> None:
    owner, second_browser = app.test_client(), app.test_client()
    assert logged_in_status(log_in(owner, resident["phone"])) == 200
    assert logged_in_status(log_in(second_browser, resident["phone"])) == 200
    owner.delete("/api/v1/session")

    for _ in range(5):
        assert log_in(owner, resident["phone"], WRONG_PASSWORD).status_code == 401
    response = log_in(owner, resident["phone"])  # the right password waits too
    assert response.status_code == 429
    assert 890 <= int(response.headers["Retry-After"]) <= 900
    # That cookie's failures are its own: the other browser, and strangers, are not locked out.
    assert logged_in_status(log_in(second_browser, resident["phone"])) == 200
    assert logged_in_status(log_in(app.test_client(), resident["phone"])) == 200


def test_a_locked_device_cookie_cannot_be_replaced_by_a_forged_one(
    app: Any, log_in: LogIn, resident: dict[str, Any]
) -> None:
    """Dropping or mangling a locked cookie makes the client an untrusted one, with the account's count."""
    thief = app.test_client()
    assert logged_in_status(log_in(thief, resident["phone"])) == 200
    stolen = device_cookie(thief)
    for _ in range(5):
        assert log_in(thief, resident["phone"], WRONG_PASSWORD).status_code == 401
    assert log_in(thief, resident["phone"], WRONG_PASSWORD).status_code == 429
    thief.set_cookie(DEVICE_COOKIE, tampered(stolen))
    for _ in range(5):
        assert log_in(thief, resident["phone"], WRONG_PASSWORD).status_code == 401
    assert log_in(thief, resident["phone"], WRONG_PASSWORD).status_code == 429


def test_success_renews_the_device_cookie_and_clears_its_count(
    app: Any, log_in: LogIn, resident: dict[str, Any]
) -> None:
    owner = app.test_client()
    assert logged_in_status(log_in(owner, resident["phone"])) == 200
    first = device_cookie(owner)
    for _ in range(4):
        assert log_in(owner, resident["phone"], WRONG_PASSWORD).status_code == 401
    assert logged_in_status(log_in(owner, resident["phone"])) == 200
    assert device_cookie(owner) != first  # a fresh nonce at every login (OWASP)
    for _ in range(4):
        assert log_in(owner, resident["phone"], WRONG_PASSWORD).status_code == 401
    assert logged_in_status(log_in(owner, resident["phone"])) == 200


def test_the_device_cookie_cool_down_ends(app: Any, resident: dict[str, Any]) -> None:
    """With the clock as a parameter: the device cookie is locked for the cool-down, then trusted again."""
    start = datetime(2026, 11, 18, 9, 46, 40, tzinfo=UTC)
    with app.app_context():
        session, keys = db.session(), data_keys()
        owner = residents.authenticate(session, keys, resident["phone"], DEMO_PASSWORD, now=start)
        cookie = residents.new_device_cookie(keys, owner)

        def attempt(password: str, seconds: float, device: str | None = cookie) -> Any:
            return residents.authenticate(
                session, keys, resident["phone"], password, now=start + timedelta(seconds=seconds), device_cookie=device
            )

        for i in range(5):
            with pytest.raises(BadCredentials):
                attempt(WRONG_PASSWORD, i)
        with pytest.raises(TooManyAttempts) as caught:
            attempt(DEMO_PASSWORD, 4.5)
        assert caught.value.retry_after == 900
        assert attempt(DEMO_PASSWORD, 5, device=None).id == owner.id  # the account is not locked
        with pytest.raises(TooManyAttempts):
            attempt(DEMO_PASSWORD, 903.5)
        assert attempt(DEMO_PASSWORD, 905).id == owner.id


# -- the cookie itself ---------------------------------------------------------------


def set_cookie_header(response: Any, name: str) -> str:
    headers = [value for value in response.headers.getlist("Set-Cookie") if value.startswith(f"{name}=")]
    assert len(headers) == 1, response.headers.getlist("Set-Cookie")
    return str(headers[0])


def test_the_device_cookie_in_development(app: Any, log_in: LogIn, resident: dict[str, Any]) -> None:
    response = log_in(app.test_client(), resident["phone"])
    header = set_cookie_header(response, DEVICE_COOKIE)
    attributes = {part.strip().split("=")[0].lower() for part in header.split(";")[1:]}
    assert {"httponly", "max-age", "path"} <= attributes
    assert "secure" not in attributes and "domain" not in attributes
    assert "SameSite=Strict" in header and "Path=/" in header
    max_age = int(re.search(r"Max-Age=(\d+)", header).group(1))  # type: ignore[union-attr]
    assert max_age == 365 * 24 * 3600
    # Nothing in it names the resident: a nonce and a MAC.
    value = header.split(";")[0].split("=", 1)[1]
    assert resident["phone"] not in value and re.fullmatch(r"[A-Za-z0-9_-]{22}\.[0-9a-f]{64}", value)


def test_the_device_cookie_in_production_is_a_host_cookie(keys_dir: Path, tmp_path: Path) -> None:
    application = create_app(
        {"DATABASE_URL": f"sqlite:///{tmp_path / 'production.db'}", "KEYS_DIR": str(keys_dir), "RATE_LIMITS": "off"}
    )
    application.testing = True
    with application.app_context():
        db.init_db()
    try:
        client = application.test_client()
        body = registration()
        https = {"base_url": "https://localhost"}
        assert client.post("/api/v1/residents", json=body, **https).status_code == 201
        response = client.post("/api/v1/session", json={"phone": body["phone"], "password": DEMO_PASSWORD}, **https)
        assert response.status_code == 200
        header = set_cookie_header(response, "__Host-codeservice_device")
        assert "Secure" in header and "Path=/" in header and "Domain" not in header
        assert "HttpOnly" in header and "SameSite=Strict" in header
        # The __Host- cookie is what the next login is judged by.
        stranger = application.test_client()
        for _ in range(5):
            stranger.post("/api/v1/session", json={"phone": body["phone"], "password": WRONG_PASSWORD}, **https)
        response = stranger.post("/api/v1/session", json={"phone": body["phone"], "password": DEMO_PASSWORD}, **https)
        assert response.status_code == 429
        response = client.post("/api/v1/session", json={"phone": body["phone"], "password": DEMO_PASSWORD}, **https)
        assert response.status_code == 200
    finally:
        with application.app_context():
            db.engine().dispose()
