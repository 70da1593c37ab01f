"""Rate limits (codeservice.protection), security headers and the body size limit."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from helpers import ALL_SCENES, DEMO_PASSWORD, DROP, registration, skip_or_fail

from codeservice import create_app, db, scanners
from codeservice.errors import ConfigError

REDIS_URL = "redis://127.0.0.1:6379/15"
CSRF_FIELD = re.compile(r'<input type="hidden" name="csrf_token" value="([^"]+)">')

AppFactory = Callable[..., Flask]


@pytest.fixture
def make_app(keys_dir: Path, tmp_path: Path) -> Iterator[AppFactory]:
    """``make_app(**config)``: an app on one SQLite file with the rate limits on (memory storage)."""
    apps: list[Flask] = []

    def build(**overrides: Any) -> Flask:
        config = {
            "DATABASE_URL": f"sqlite:///{tmp_path / 'protection.db'}",
            "KEYS_DIR": str(keys_dir),
            "ENV": "development",
            "RATE_LIMITS": "on",
            **overrides,
        }
        config = {name: value for name, value in config.items() if value is not DROP}
        application = create_app(config)
        application.testing = True
        with application.app_context():
            db.init_db()
        apps.append(application)
        return application

    yield build
    for application in apps:
        with application.app_context():
            db.engine().dispose()


def log_in(client: Any, phone: str | None = None, **kwargs: Any) -> Any:
    """A login with a fresh unknown phone (so the per-phone lockout never answers first)."""
    phone = phone or f"139{secrets.randbelow(10**8):08d}"
    return client.post("/api/v1/session", json={"phone": phone, "password": "not the password"}, **kwargs)


def assert_rate_limited(response: Any) -> None:
    assert response.status_code == 429, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["code"] == "rate_limited"
    assert error["message"]
    assert 1 <= int(response.headers["Retry-After"]) <= 60


def scanner_key(app: Flask, device: str) -> str:
    with app.app_context():
        _scanner, key = scanners.add_scanner(
            db.session(),
            venue_id="museum-1",
            device_id=device,
            scenes=ALL_SCENES,
            installed=ALL_SCENES,
            now=datetime.now(UTC),
        )
    return key


def verify(client: Any, key: str) -> Any:
    body = {"token": "x", "scene": "transit", "context": {"station": "A", "direction": "in"}}
    return client.post("/api/v1/verify", json=body, headers={"Authorization": f"Bearer {key}"})


def csrf_token(client: Any, path: str) -> str:
    match = CSRF_FIELD.search(client.get(path).get_data(as_text=True))
    assert match, f"no CSRF token on {path}"
    return match.group(1)


# -- rate limits ---------------------------------------------------------------


def test_the_eleventh_login_in_a_minute_is_rate_limited(make_app: AppFactory) -> None:
    client = make_app().test_client()
    for _ in range(10):
        assert log_in(client).status_code == 401
    assert_rate_limited(log_in(client))
    # Another address has its own budget.
    assert log_in(client, environ_base={"REMOTE_ADDR": "10.0.0.2"}).status_code == 401


def test_behind_a_trusted_proxy_clients_are_told_apart_by_x_forwarded_for(make_app: AppFactory) -> None:
    client = make_app(TRUSTED_PROXIES=1).test_client()
    proxy = {"REMOTE_ADDR": "127.0.0.1"}
    for _ in range(10):
        assert log_in(client, environ_base=proxy, headers={"X-Forwarded-For": "203.0.113.7"}).status_code == 401
    assert_rate_limited(log_in(client, environ_base=proxy, headers={"X-Forwarded-For": "203.0.113.7"}))
    # Same proxy, another client: its own budget.
    assert log_in(client, environ_base=proxy, headers={"X-Forwarded-For": "203.0.113.8"}).status_code == 401


def test_without_trusted_proxies_a_forwarded_address_is_ignored(make_app: AppFactory) -> None:
    client = make_app().test_client()
    for index in range(10):
        assert log_in(client, headers={"X-Forwarded-For": f"203.0.113.{index}"}).status_code == 401
    assert_rate_limited(log_in(client, headers={"X-Forwarded-For": "203.0.113.99"}))


def test_web_and_api_logins_share_one_budget(make_app: AppFactory) -> None:
    client = make_app(RATE_LIMIT_LOGIN="3/minute").test_client()
    for _ in range(3):
        assert log_in(client).status_code == 401
    token = csrf_token(client, "/login")  # GET /login is not limited
    response = client.post(
        "/login",
        data={"phone": "13900139000", "password": "x", "csrf_token": token},
        headers={"Accept-Language": "en"},
    )
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) >= 1
    assert response.mimetype == "text/html"
    assert "Too many attempts" in response.get_data(as_text=True)


def test_a_rate_limited_web_registration_gets_its_form_again(make_app: AppFactory) -> None:
    """The web's own page for RateLimited: the form with what was typed (never the password), in its language."""
    client = make_app(RATE_LIMIT_REGISTER="1/minute").test_client()
    assert client.post("/api/v1/residents", json=registration()).status_code == 201
    body = registration(name="李四光")
    response = client.post(
        "/register",
        data={**body, "csrf_token": csrf_token(client, "/register")},
        headers={"Accept-Language": "en"},
    )
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) >= 1
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "Too many attempts" in page
    assert "李四光" in page and body["password"] not in page


def test_a_rate_limited_code_page_is_429_with_retry_after(make_app: AppFactory) -> None:
    client = make_app(RATE_LIMIT_CODE="1/minute").test_client()
    body = registration()
    assert client.post("/api/v1/residents", json=body).status_code == 201
    assert client.post("/api/v1/session", json={"phone": body["phone"], "password": DEMO_PASSWORD}).status_code == 200
    assert client.get("/api/v1/code").status_code == 200  # the page and the API share the budget
    response = client.get("/code", headers={"Accept-Language": "en"})
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) >= 1
    assert "Too many attempts" in response.get_data(as_text=True)


def test_the_sixth_registration_in_a_minute_is_rate_limited(make_app: AppFactory) -> None:
    client = make_app().test_client()
    for _ in range(5):
        assert client.post("/api/v1/residents", json=registration()).status_code == 201
    assert_rate_limited(client.post("/api/v1/residents", json=registration()))


def test_codes_are_limited_per_resident(make_app: AppFactory) -> None:
    app = make_app(RATE_LIMIT_CODE="2/minute")
    client = app.test_client()
    body = registration()
    assert client.post("/api/v1/residents", json=body).status_code == 201
    assert client.post("/api/v1/session", json={"phone": body["phone"], "password": DEMO_PASSWORD}).status_code == 200
    assert client.get("/api/v1/code").status_code == 200
    assert client.get("/api/v1/code.png").status_code == 200
    assert_rate_limited(client.get("/api/v1/code"))
    # Another resident behind the same address is not affected.
    other, body = app.test_client(), registration()
    assert other.post("/api/v1/residents", json=body).status_code == 201
    assert other.post("/api/v1/session", json={"phone": body["phone"], "password": DEMO_PASSWORD}).status_code == 200
    assert other.get("/api/v1/code").status_code == 200


def test_verify_is_limited_per_scanner_not_per_address(make_app: AppFactory) -> None:
    app = make_app(RATE_LIMIT_VERIFY="3/minute")
    client = app.test_client()
    first, second = scanner_key(app, "gate-1"), scanner_key(app, "gate-2")
    for _ in range(3):
        assert verify(client, first).status_code == 200
    assert_rate_limited(verify(client, first))
    # The same address, another scanner: its own budget.
    for _ in range(3):
        assert verify(client, second).status_code == 200
    assert_rate_limited(verify(client, second))


def test_rate_limits_off_never_answers_429(make_app: AppFactory) -> None:
    app = make_app(RATE_LIMITS="off", RATE_LIMIT_LOGIN="1/minute", RATE_LIMIT_VERIFY="1/minute")
    client = app.test_client()
    key = scanner_key(app, "gate-1")
    for _ in range(15):
        assert log_in(client).status_code == 401
        assert verify(client, key).status_code == 200


def test_the_environment_variable_turns_them_off(make_app: AppFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Contract section 7: CODESERVICE_RATE_LIMITS=off, for load tests and benchmarks."""
    monkeypatch.setenv("CODESERVICE_RATE_LIMITS", "off")
    monkeypatch.setenv("CODESERVICE_RATE_LIMIT_LOGIN", "1/minute")
    client = make_app(RATE_LIMITS=DROP).test_client()
    for _ in range(5):
        assert log_in(client).status_code == 401


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"RATE_LIMITS": "sometimes"}, "RATE_LIMITS must be on or off"),
        ({"RATE_LIMIT_LOGIN": "lots"}, "RATE_LIMIT_LOGIN must be a rate"),
    ],
)
def test_bad_settings_are_refused(make_app: AppFactory, overrides: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_app(**overrides)


@pytest.fixture
def redis_url() -> Iterator[str]:
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.flushdb()
    except redis.exceptions.ConnectionError as exc:
        client.close()
        skip_or_fail(f"Redis is not reachable at {REDIS_URL}: {exc.__class__.__name__}")
    yield REDIS_URL
    client.flushdb()
    client.close()


def test_instances_share_the_budget_through_redis(make_app: AppFactory, redis_url: str) -> None:
    settings = {"RATE_LIMIT_STORAGE_URL": redis_url, "RATE_LIMIT_LOGIN": "3/minute"}
    first, second = make_app(**settings).test_client(), make_app(**settings).test_client()
    assert log_in(first).status_code == 401
    assert log_in(second).status_code == 401
    assert log_in(first).status_code == 401
    assert_rate_limited(log_in(second))
    assert_rate_limited(log_in(first))


# -- headers and body size -----------------------------------------------------


@pytest.mark.parametrize("path", ["/login", "/register", "/code"])
def test_pages_carry_the_security_headers(make_app: AppFactory, path: str) -> None:
    client = make_app().test_client()
    body = registration()
    if path == "/code":
        assert client.post("/api/v1/residents", json=body).status_code == 201
        login = {"phone": body["phone"], "password": DEMO_PASSWORD}
        assert client.post("/api/v1/session", json=login).status_code == 200
    response = client.get(path)
    assert response.status_code == 200
    csp = response.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    for directive in ("script-src 'self'", "style-src 'self'", "frame-ancestors 'none'", "base-uri 'none'"):
        assert directive in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "Strict-Transport-Security" not in response.headers  # development: plain http
    if path == "/code":
        assert "<svg" in response.get_data(as_text=True)  # the QR, inline: allowed by the policy


def test_json_responses_carry_them_too(make_app: AppFactory) -> None:
    response = make_app().test_client().get("/healthz")
    assert "unsafe-inline" not in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"


def test_hsts_outside_development(make_app: AppFactory) -> None:
    response = make_app(ENV="production").test_client().get("/login")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")


def test_bodies_over_one_megabyte_are_refused(make_app: AppFactory) -> None:
    app = make_app()
    assert app.config["MAX_CONTENT_LENGTH"] == 1024 * 1024
    response = app.test_client().post(
        "/api/v1/session", data=b"{" + b" " * (1024 * 1024) + b"}", content_type="application/json"
    )
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "body_too_large"
