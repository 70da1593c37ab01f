"""Registration and sessions over HTTP: POST /api/v1/residents, POST and DELETE /api/v1/session.

Every test that takes ``client`` runs on SQLite and on PostgreSQL (conftest).
"""

from __future__ import annotations

import json
import logging
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from helpers import DEMO_PASSWORD, DROP, gb11643_id, registration
from itsdangerous import base64_decode
from sqlalchemy import text

from codeservice import create_app, db, residents
from codeservice.context import data_keys
from codeservice.errors import BadCredentials, TooManyAttempts

FIELDS = ("name", "id_type", "id_number", "phone", "password")
WRONG_PASSWORD = "not the password at all"


def register(client: Any, **overrides: Any) -> Any:
    return client.post("/api/v1/residents", json=registration(**overrides))


def log_in(client: Any, phone: str, password: str = DEMO_PASSWORD) -> Any:
    return client.post("/api/v1/session", json={"phone": phone, "password": password})


def error_of(response: Any) -> dict[str, Any]:
    body = response.get_json()
    assert response.mimetype == "application/json", response.data[:200]
    assert set(body) == {"error"}
    assert {"code", "message"} <= set(body["error"])
    return body["error"]


def id_with_check_x() -> str:
    """A resident ID number whose check character is X."""
    for sequence in range(1000):
        number = gb11643_id(f"31010419850615{sequence:03d}")
        if number.endswith("X"):
            return number
    raise AssertionError("no X check character in 1000 tries")


# -- registration ------------------------------------------------------------------


def test_registration_succeeds(client: Any) -> None:
    body = registration()
    response = client.post("/api/v1/residents", json=body)
    assert response.status_code == 201
    assert response.get_json() == {"resident": {"name_masked": "张*明", "category": None, "id_type": "resident_id"}}
    raw = response.get_data(as_text=True)
    for secret in (body["id_number"], body["phone"], body["password"], body["name"]):
        assert secret not in raw


def test_registration_shows_no_code_id(app: Any, client: Any) -> None:
    response = register(client)
    with app.app_context():
        code_id = db.session().scalar(text("SELECT code_id FROM residents"))
    assert code_id and code_id not in response.get_data(as_text=True)


def test_registration_does_not_log_in(client: Any) -> None:
    assert register(client).status_code == 201
    assert "Set-Cookie" not in register(client).headers
    assert error_of(client.get("/api/v1/code"))["code"] == "not_authenticated"


def test_a_resident_of_sixty_is_a_senior(client: Any) -> None:
    response = register(client, id_number=gb11643_id("31010419500101001"))
    assert response.status_code == 201
    assert response.get_json()["resident"]["category"] == "senior"


@pytest.mark.parametrize(
    ("id_type", "id_number"),
    [("passport", "E12345678"), ("hk_macao_permit", "H1234567801"), ("taiwan_permit", "12345678")],
)
def test_other_documents_register(client: Any, id_type: str, id_number: str) -> None:
    response = register(client, id_type=id_type, id_number=id_number, name="Chan Tai Man")
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["resident"] == {"name_masked": "C*** T** M**", "category": None, "id_type": id_type}


def test_wrong_check_digit(client: Any) -> None:
    good = registration()["id_number"]
    bad = good[:17] + ("0" if good[17] != "0" else "1")
    response = register(client, id_number=bad)
    assert response.status_code == 422
    assert error_of(response) | {"message": ""} == {"code": "invalid_id_number", "field": "id_number", "message": ""}
    assert bad not in response.get_data(as_text=True)


@pytest.mark.parametrize("date_part", ["19900230", "19901301", "20991231", "18991231"])
def test_impossible_or_future_birth_date(client: Any, date_part: str) -> None:
    response = register(client, id_number=gb11643_id(f"310104{date_part}123"))
    assert response.status_code == 422
    assert error_of(response)["code"] == "invalid_id_number"


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("name", " ", "invalid_name"),
        ("name", "张\u202e三", "invalid_name"),
        ("id_type", "id_card", "invalid_id_type"),
        ("id_number", "ABC", "invalid_id_number"),
        ("phone", "12812345678", "invalid_phone"),
        ("password", "short", "weak_password"),
        ("password", "1111111111111", "weak_password"),
    ],
)
def test_invalid_fields_are_422(client: Any, field: str, value: str, code: str) -> None:
    response = register(client, **{field: value})
    assert response.status_code == 422
    error = error_of(response)
    assert (error["code"], error["field"]) == (code, field)


def test_the_same_identity_twice(client: Any) -> None:
    first = registration()
    assert client.post("/api/v1/residents", json=first).status_code == 201
    response = register(client, id_number=first["id_number"])  # another phone
    assert response.status_code == 409
    assert error_of(response)["code"] == "identity_taken"


def test_the_same_identity_with_a_lower_case_x(client: Any) -> None:
    number = id_with_check_x()
    assert register(client, id_number=number).status_code == 201
    response = register(client, id_number=number.lower())
    assert response.status_code == 409
    assert error_of(response)["code"] == "identity_taken"


@pytest.mark.parametrize(
    ("id_type", "first", "second"),
    [
        ("passport", "E12345678", "e 1234 5678"),
        ("hk_macao_permit", "H1234567801", "H12345678"),  # a renewed Home Return Permit
        ("taiwan_permit", "1234567801(B)", "12345678"),
    ],
)
def test_the_same_document_spelled_differently(client: Any, id_type: str, first: str, second: str) -> None:
    assert register(client, id_type=id_type, id_number=first).status_code == 201
    response = register(client, id_type=id_type, id_number=second)
    assert (response.status_code, error_of(response)["code"]) == (409, "identity_taken")


def test_the_same_number_as_another_document_type_is_another_identity(client: Any) -> None:
    assert register(client, id_type="passport", id_number="12345678").status_code == 201
    assert register(client, id_type="taiwan_permit", id_number="12345678").status_code == 201


def test_the_same_phone_twice(client: Any) -> None:
    first = registration()
    assert client.post("/api/v1/residents", json=first).status_code == 201
    for spelling in (first["phone"], "+86 " + first["phone"], "86-" + first["phone"]):
        response = register(client, phone=spelling)
        assert response.status_code == 409
        assert error_of(response)["code"] == "phone_taken"


def test_a_lost_race_is_still_a_409(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two registrations pass the check together: the database's unique index decides."""
    first = registration()
    assert client.post("/api/v1/residents", json=first).status_code == 201
    check = residents._ensure_free
    skip = {"next": False}

    def skip_the_check_before_the_insert(*args: Any) -> None:
        if skip["next"]:
            skip["next"] = False
            return
        check(*args)

    monkeypatch.setattr(residents, "_ensure_free", skip_the_check_before_the_insert)
    races = (({"id_number": first["id_number"]}, "identity_taken"), ({"phone": first["phone"]}, "phone_taken"))
    for overrides, code in races:
        skip["next"] = True
        response = register(client, **overrides)
        assert (response.status_code, error_of(response)["code"]) == (409, code)
        assert not skip["next"]
    assert register(client).status_code == 201  # and the session is usable after the rollback


@pytest.mark.parametrize("field", FIELDS)
def test_a_missing_field(client: Any, field: str) -> None:
    response = register(client, **{field: DROP})
    assert response.status_code == 400
    assert error_of(response)["code"] == "missing_field"
    assert field in error_of(response)["message"]


@pytest.mark.parametrize("field", FIELDS)
def test_a_null_field_is_missing(client: Any, field: str) -> None:
    response = register(client, **{field: None})
    assert (response.status_code, error_of(response)["code"]) == (400, "missing_field")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("phone", 13812345678),
        ("name", ["张", "三"]),
        ("id_type", True),
        ("id_number", 11010519491231002),
        ("password", {"value": "x"}),
        ("password", False),
        ("name", 1.5),
    ],
)
def test_wrong_json_types(client: Any, field: str, value: Any) -> None:
    response = register(client, **{field: value})
    assert response.status_code == 400
    assert error_of(response)["code"] == "wrong_type"


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (b'{"name": "x"}', "text/plain"),
        (b"name=x&phone=1", "application/x-www-form-urlencoded"),
        (b"", None),
    ],
)
def test_a_body_that_is_not_json(client: Any, data: bytes, content_type: str | None) -> None:
    response = client.post("/api/v1/residents", data=data, content_type=content_type)
    assert response.status_code == 415
    assert error_of(response)["code"] == "unsupported_media_type"


@pytest.mark.parametrize("data", [b'{"name": ', b"{'name': 'x'}", b"[]", b'"text"', b"\xff\xfe"])
def test_malformed_json(client: Any, data: bytes) -> None:
    response = client.post("/api/v1/residents", data=data, content_type="application/json")
    assert response.status_code == 400
    assert error_of(response)["code"] == "invalid_json"


def test_a_body_over_one_megabyte(client: Any) -> None:
    body = registration(name="张" * (600 * 1024))  # 1.8 MB in UTF-8
    response = client.post("/api/v1/residents", json=body)
    assert response.status_code == 413
    assert error_of(response)["code"] == "body_too_large"


# -- logging in ----------------------------------------------------------------------


def test_log_in(client: Any, resident: dict[str, Any]) -> None:
    response = log_in(client, resident["phone"])
    assert response.status_code == 200
    assert response.get_json() == {"resident": {"name_masked": "张*明", "category": None, "id_type": "resident_id"}}
    # The session cookie; the device cookie beside it is tests/test_login_lockout.py's.
    set_cookies = response.headers.getlist("Set-Cookie")
    (cookie,) = [value for value in set_cookies if not value.startswith("codeservice_device=")]
    attributes = {part.strip().split("=")[0].lower(): part.strip() for part in cookie.split(";")}
    assert cookie.startswith("codeservice_session=")
    assert "httponly" in attributes
    assert attributes["samesite"] == "SameSite=Lax"
    assert attributes["path"] == "Path=/"
    assert client.get("/api/v1/code").status_code == 200


def test_log_in_with_another_spelling_of_the_phone(client: Any, resident: dict[str, Any]) -> None:
    phone = resident["phone"]
    assert log_in(client, f"+86 {phone[:3]} {phone[3:7]} {phone[7:]}").status_code == 200


def test_wrong_password_and_unknown_phone_look_the_same(client: Any, resident: dict[str, Any]) -> None:
    wrong_password = log_in(client, resident["phone"], WRONG_PASSWORD)
    unknown_phone = log_in(client, "13900000000", WRONG_PASSWORD)
    unknown_phone_right_password = log_in(client, "13900000001", resident["password"])
    malformed_phone = log_in(client, "not a phone", WRONG_PASSWORD)
    for response in (wrong_password, unknown_phone, unknown_phone_right_password, malformed_phone):
        assert response.status_code == 401
        assert response.get_data() == wrong_password.get_data()
        assert "Set-Cookie" not in response.headers
    assert error_of(wrong_password)["code"] == "bad_credentials"


def test_an_unknown_phone_costs_a_password_check(
    client: Any, resident: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unknown phones check the password against a dummy hash: no timing difference to measure."""
    checked: list[str] = []
    real_check = residents.check_password_hash

    def counting(pwhash: str, password: str) -> bool:
        checked.append(pwhash.split("$")[0])
        return real_check(pwhash, password)

    monkeypatch.setattr(residents, "check_password_hash", counting)
    log_in(client, resident["phone"], WRONG_PASSWORD)
    log_in(client, "13900000000", WRONG_PASSWORD)
    assert len(checked) == 2
    assert checked[0] == checked[1]  # the same method and parameters: scrypt:32768:8:1
    assert checked[0].startswith("scrypt:")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"phone": "13812345678"}, 400, "missing_field"),
        ({"password": DEMO_PASSWORD}, 400, "missing_field"),
        ({"phone": 13812345678, "password": DEMO_PASSWORD}, 400, "wrong_type"),
        ({"phone": "13812345678", "password": ["x"]}, 400, "wrong_type"),
    ],
)
def test_log_in_with_a_bad_body(client: Any, body: dict[str, Any], status: int, code: str) -> None:
    response = client.post("/api/v1/session", json=body)
    assert (response.status_code, error_of(response)["code"]) == (status, code)


def test_log_in_without_json(client: Any) -> None:
    response = client.post(
        "/api/v1/session", data="phone=1&password=2", content_type="application/x-www-form-urlencoded"
    )
    assert (response.status_code, error_of(response)["code"]) == (415, "unsupported_media_type")


def test_five_failures_then_a_cool_down(client: Any, resident: dict[str, Any]) -> None:
    for _ in range(5):
        assert log_in(client, resident["phone"], WRONG_PASSWORD).status_code == 401
    response = log_in(client, resident["phone"])  # the right password
    assert response.status_code == 429
    assert error_of(response)["code"] == "too_many_attempts"
    assert 890 <= int(response.headers["Retry-After"]) <= 900
    assert "Set-Cookie" not in response.headers
    assert client.get("/api/v1/code").status_code == 401


def test_unknown_phones_are_throttled_too(client: Any) -> None:
    for _ in range(5):
        assert log_in(client, "13900000000", WRONG_PASSWORD).status_code == 401
    response = log_in(client, "+86 139 0000 0000", WRONG_PASSWORD)
    assert (response.status_code, error_of(response)["code"]) == (429, "too_many_attempts")


def test_the_throttle_is_per_phone(client: Any, resident: dict[str, Any]) -> None:
    for _ in range(5):
        log_in(client, "13900000000", WRONG_PASSWORD)
    assert log_in(client, resident["phone"]).status_code == 200


def test_success_resets_the_count(client: Any, resident: dict[str, Any]) -> None:
    for _ in range(4):
        assert log_in(client, resident["phone"], WRONG_PASSWORD).status_code == 401
    assert log_in(client, resident["phone"]).status_code == 200
    for _ in range(4):
        assert log_in(client, resident["phone"], WRONG_PASSWORD).status_code == 401
    assert log_in(client, resident["phone"]).status_code == 200


def test_the_limits_are_configurable(app: Any, client: Any, resident: dict[str, Any]) -> None:
    app.config.update(LOGIN_MAX_FAILURES=2, LOGIN_COOLDOWN=60)
    for _ in range(2):
        assert log_in(client, resident["phone"], WRONG_PASSWORD).status_code == 401
    response = log_in(client, resident["phone"])
    assert response.status_code == 429
    assert 55 <= int(response.headers["Retry-After"]) <= 60


def test_the_cool_down_ends(app: Any, client: Any, resident: dict[str, Any]) -> None:
    """With the clock as a parameter: locked until exactly cooldown seconds after the fifth failure."""
    start = datetime(2026, 11, 18, 9, 46, 40, tzinfo=UTC)
    with app.app_context():
        session, keys = db.session(), data_keys()

        def attempt(password: str, seconds: float) -> Any:
            return residents.authenticate(
                session, keys, resident["phone"], password, now=start + timedelta(seconds=seconds)
            )

        for i in range(5):
            with pytest.raises(BadCredentials):
                attempt(WRONG_PASSWORD, i)
        with pytest.raises(TooManyAttempts) as caught:
            attempt(DEMO_PASSWORD, 4.5)
        assert caught.value.retry_after == 900
        with pytest.raises(TooManyAttempts) as caught:
            attempt(DEMO_PASSWORD, 903.5)
        assert caught.value.retry_after == 1
        # Over: the right password works, and a wrong one starts a fresh count.
        with pytest.raises(BadCredentials):
            attempt(WRONG_PASSWORD, 904)
        assert attempt(DEMO_PASSWORD, 905).phone_hash


def test_registration_rejects_a_naive_clock(app: Any) -> None:
    with app.app_context(), pytest.raises(ValueError, match="timezone-aware"):
        residents.register(db.session(), data_keys(), registration(), now=datetime(2026, 1, 1))


# -- logging out -----------------------------------------------------------------------


def test_log_out(logged_in: Any) -> None:
    assert logged_in.get("/api/v1/code").status_code == 200
    response = logged_in.delete("/api/v1/session")
    assert response.status_code == 204
    response = logged_in.get("/api/v1/code")
    assert (response.status_code, error_of(response)["code"]) == (401, "not_authenticated")


def test_log_out_without_a_session(client: Any) -> None:
    assert client.delete("/api/v1/session").status_code == 204


@pytest.mark.parametrize("with_session", [True, False], ids=["a session", "no session"])
def test_log_out_is_no_content(client: Any, resident: dict[str, Any], with_session: bool) -> None:
    """204 is no content (RFC 9110 section 15.3.5): no body, and no Content-Type to describe one."""
    if with_session:
        assert log_in(client, resident["phone"]).status_code == 200
    response = client.delete("/api/v1/session")
    assert response.status_code == 204
    assert "Content-Type" not in response.headers
    assert response.get_data() == b""


def test_a_copied_cookie_dies_with_the_logout(app: Any, client: Any, resident: dict[str, Any]) -> None:
    assert log_in(client, resident["phone"]).status_code == 200
    stolen = client.get_cookie("codeservice_session").value
    thief = app.test_client()
    thief.set_cookie("codeservice_session", stolen)
    assert thief.get("/api/v1/code").status_code == 200

    assert client.delete("/api/v1/session").status_code == 204
    assert thief.get("/api/v1/code").status_code == 401
    # Logging in again does not bring the old copy back.
    assert log_in(client, resident["phone"]).status_code == 200
    assert client.get("/api/v1/code").status_code == 200
    assert thief.get("/api/v1/code").status_code == 401


# -- the session cookie --------------------------------------------------------------------


def session_payload(cookie: str) -> dict[str, Any]:
    """What anyone holding the cookie reads in it without the secret: it is signed, not encrypted."""
    compressed, payload = cookie.startswith("."), cookie.lstrip(".").split(".")[0]
    raw = base64_decode(payload)
    return json.loads(zlib.decompress(raw) if compressed else raw)


def re_signed(app: Any, cookie: str, **changes: Any) -> str:
    """The cookie's session with ``changes``, signed with the app's own secret (as the app would)."""
    serializer = app.session_interface.get_signing_serializer(app)
    return serializer.dumps({**serializer.loads(cookie), **changes})


def test_the_production_cookie_is_host_prefixed(
    request: pytest.FixtureRequest, app_config: dict[str, Any], resident: dict[str, Any]
) -> None:
    app = create_app({**app_config, "ENV": "production"})
    client = app.test_client()
    request.addfinalizer(db.engine(app).dispose)
    https = "https://localhost"  # Secure cookies travel over https only
    response = client.post(
        "/api/v1/session", json={"phone": resident["phone"], "password": DEMO_PASSWORD}, base_url=https
    )
    assert response.status_code == 200
    (cookie,) = [c for c in response.headers.getlist("Set-Cookie") if not c.startswith("__Host-codeservice_device=")]
    name = cookie.split("=", 1)[0]
    attributes = {part.strip().split("=")[0].lower(): part.strip() for part in cookie.split(";")[1:]}
    assert name == "__Host-codeservice_session" == app.config["SESSION_COOKIE_NAME"]
    assert "secure" in attributes and "httponly" in attributes
    assert attributes["path"] == "Path=/"
    assert "domain" not in attributes
    assert client.get("/api/v1/code", base_url=https).status_code == 200
    assert create_app(app_config).config["SESSION_COOKIE_NAME"] == "codeservice_session"  # plain http in development


def test_the_session_cookie_shows_no_resident_id(app: Any, client: Any, resident: dict[str, Any]) -> None:
    assert log_in(client, resident["phone"]).status_code == 200
    payload = session_payload(client.get_cookie("codeservice_session").value)
    with app.app_context():
        resident_id = db.session().execute(text("SELECT id FROM residents")).scalar_one()
    assert "rid" not in payload
    assert not [value for value in payload.values() if type(value) is int and value == resident_id]
    assert str(resident_id) not in payload.values()


@pytest.mark.parametrize("days, status", [(29, 200), (31, 401)])
def test_a_session_ends_thirty_days_after_login_however_often_used(
    app: Any, client: Any, resident: dict[str, Any], days: int, status: int
) -> None:
    assert log_in(client, resident["phone"]).status_code == 200
    cookie = client.get_cookie("codeservice_session").value
    logged_in_at = int((datetime.now(UTC) - timedelta(days=days)).timestamp())
    # Signed just now: the sliding lifetime has been refreshed today, only the login is old.
    client.set_cookie("codeservice_session", re_signed(app, cookie, login_at=logged_in_at))
    response = client.get("/api/v1/code")
    assert response.status_code == status
    if status == 401:
        assert error_of(response)["code"] == "not_authenticated"
        assert client.get("/code").status_code == 302  # the page sends them to log in too
    else:
        # The refreshed cookie does not outlive the login's thirty days either.
        expires = client.get_cookie("codeservice_session").expires
        assert expires is not None
        assert expires.timestamp() <= logged_in_at + timedelta(days=30).total_seconds() + 1


# -- personal data stays out of the database and the logs --------------------------------


def plaintexts(body: dict[str, Any]) -> list[str]:
    return [body["id_number"], body["id_number"].lower(), body["phone"], body["name"], body["password"]]


def test_nothing_personal_is_stored_in_the_clear(app: Any, client: Any) -> None:
    body = registration(name="欧阳娜娜", id_number=id_with_check_x())
    assert client.post("/api/v1/residents", json=body).status_code == 201
    assert log_in(client, body["phone"]).status_code == 200
    assert log_in(client, body["phone"], WRONG_PASSWORD).status_code == 401  # the device cookie's row
    assert log_in(client, "13900000000", WRONG_PASSWORD).status_code == 401  # a throttle row

    with app.app_context():
        engine = db.engine()
        with engine.connect() as connection:
            tables = {
                table: [tuple(row) for row in connection.execute(text(f"SELECT * FROM {table}"))]
                for table in ("residents", "login_throttle", "device_throttle")
            }
    assert len(tables["residents"]) == 1 and len(tables["login_throttle"]) == 1 and len(tables["device_throttle"]) == 1
    secrets_ = [*plaintexts(body), "13900000000"]
    for table, rows in tables.items():
        for row in rows:
            for value in row:
                if isinstance(value, memoryview):
                    value = value.tobytes()
                for secret in secrets_:
                    if isinstance(value, bytes):
                        assert secret.encode("utf-8") not in value, (table, secret)
                    else:
                        assert secret not in str(value), (table, secret)
    assert "欧**娜" in tables["residents"][0]  # the masked name, for display


def test_stored_values_decrypt_to_the_normalised_input(app: Any, client: Any) -> None:
    body = registration(phone="+86 139-1234-5678")
    assert client.post("/api/v1/residents", json=body).status_code == 201
    with app.app_context():
        keys = data_keys()
        resident = residents.find_by_phone(db.session(), keys, "13912345678")
        assert resident is not None
        assert keys.decrypt(resident.phone_encrypted, purpose="phone") == "13912345678"
        assert keys.decrypt(resident.id_number_encrypted, purpose="id_number") == body["id_number"]
        assert keys.decrypt(resident.name_encrypted, purpose="name") == body["name"]
        assert resident.password_hash.startswith("scrypt:")
        assert len(resident.code_id) == 16


def test_nothing_personal_is_logged(client: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="sqlalchemy")  # SQL and its parameters too
    body = registration(name="欧阳娜娜")
    assert client.post("/api/v1/residents", json=body).status_code == 201
    assert client.post("/api/v1/residents", json=body).status_code == 409
    assert register(client, id_number=body["id_number"][:17] + "Y").status_code == 422
    assert log_in(client, body["phone"]).status_code == 200
    assert log_in(client, body["phone"], WRONG_PASSWORD).status_code == 401
    assert client.delete("/api/v1/session").status_code == 204

    assert any(record.name == "codeservice.residents" for record in caplog.records)
    assert any(record.name.startswith("sqlalchemy.engine") for record in caplog.records)
    logged = caplog.text + "".join(repr(record.args) for record in caplog.records)
    for secret in [*plaintexts(body), WRONG_PASSWORD]:
        assert secret not in logged
