"""`flask --app codeservice residents set-category`, and the category a code carries."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import pytest
from helpers import DEMO_PASSWORD, NOW, gb11643_id, registration

from codeservice import db, residents
from codeservice.context import data_keys
from codeservice.models import Resident
from codeservice.residents import age_on, code_category, masked_name
from verifiers.jose import b64url_decode


def code_claims(client: Any) -> dict[str, Any]:
    """The claims of the logged-in resident's live code (GET /api/v1/code)."""
    response = client.get("/api/v1/code")
    assert response.status_code == 200, response.get_json()
    payload = response.get_json()["token"].split(".")[1]
    return json.loads(b64url_decode(payload))


def set_category(runner: Any, phone: str, category: str) -> Any:
    return runner.invoke(args=["residents", "set-category", "--phone", phone, "--category", category])


def sign_up_and_log_in(client: Any, **overrides: Any) -> dict[str, Any]:
    body = registration(**overrides)
    assert client.post("/api/v1/residents", json=body).status_code == 201
    response = client.post("/api/v1/session", json={"phone": body["phone"], "password": DEMO_PASSWORD})
    assert response.status_code == 200
    return body


# -- the command ------------------------------------------------------------------------


@pytest.mark.parametrize("category", ["student", "disabled", "child"])
def test_set_category_reaches_the_code(runner: Any, logged_in: Any, resident: dict[str, Any], category: str) -> None:
    assert "cat" not in code_claims(logged_in)
    result = set_category(runner, resident["phone"], category)
    assert result.exit_code == 0, result.output
    assert f"category {category}" in result.output
    assert resident["phone"] not in result.output  # shown masked: 13x****xxxx
    assert resident["phone"][-4:] in result.output
    assert code_claims(logged_in)["cat"] == category
    assert logged_in.post("/api/v1/session", json={"phone": resident["phone"], "password": DEMO_PASSWORD}).get_json()[
        "resident"
    ]["category"] == category


def test_none_clears_the_category(runner: Any, logged_in: Any, resident: dict[str, Any]) -> None:
    assert set_category(runner, resident["phone"], "student").exit_code == 0
    result = set_category(runner, resident["phone"], "none")
    assert result.exit_code == 0, result.output
    assert "cat" not in code_claims(logged_in)


def test_any_spelling_of_the_phone(runner: Any, logged_in: Any, resident: dict[str, Any]) -> None:
    phone = resident["phone"]
    assert set_category(runner, f"+86 {phone[:3]}-{phone[3:7]}-{phone[7:]}", "CHILD").exit_code == 0
    assert code_claims(logged_in)["cat"] == "child"


def test_an_unknown_phone(runner: Any, resident: dict[str, Any]) -> None:
    result = set_category(runner, "13900000000", "student")
    assert result.exit_code == 1
    assert "no resident has this phone number" in result.output
    assert "Traceback" not in result.output


def test_a_malformed_phone(runner: Any) -> None:
    result = set_category(runner, "12345", "student")
    assert result.exit_code == 1
    assert "mainland mobile number" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("category", ["senior", "vip", ""])
def test_a_category_the_command_does_not_set(runner: Any, resident: dict[str, Any], category: str) -> None:
    result = set_category(runner, resident["phone"], category)
    assert result.exit_code == 2  # a usage error
    assert "Traceback" not in result.output


def test_senior_follows_the_birth_date(runner: Any, client: Any) -> None:
    body = sign_up_and_log_in(client, id_number=gb11643_id("31010419500101001"))
    assert code_claims(client)["cat"] == "senior"
    assert set_category(runner, body["phone"], "student").exit_code == 0
    assert code_claims(client)["cat"] == "senior"  # senior beats student and child
    result = set_category(runner, body["phone"], "disabled")
    assert "codes now carry disabled" in result.output
    assert code_claims(client)["cat"] == "disabled"  # an administrator's disabled beats senior


def test_the_senior_age_is_configurable(app: Any, client: Any) -> None:
    body = registration(id_number=gb11643_id("31010419700101001"))  # in their fifties
    response = client.post("/api/v1/residents", json=body)
    assert response.get_json()["resident"]["category"] is None
    app.config["SENIOR_AGE"] = 50
    response = client.post("/api/v1/session", json={"phone": body["phone"], "password": DEMO_PASSWORD})
    assert response.get_json()["resident"]["category"] == "senior"


def test_set_category_as_a_function(app: Any, resident: dict[str, Any]) -> None:
    with app.app_context():
        session, keys = db.session(), data_keys()
        assert residents.set_category(session, keys, resident["phone"], "student").category == "student"
        found = residents.find_by_phone(session, keys, resident["phone"])
        assert found is not None and found.category == "student"
        assert residents.find_by_phone(session, keys, "13900000000") is None


# -- code_category: pure, with a fixed clock ---------------------------------------------


def epoch(*args: int, hour_utc: int = 0, minute: int = 0, second: int = 0) -> int:
    return int(datetime(*args, hour_utc, minute, second, tzinfo=UTC).timestamp())  # type: ignore[misc]


def person(birth_date: date | None, category: str | None = None) -> Resident:
    return Resident(birth_date=birth_date, category=category)


def test_sixty_on_the_birthday_in_china_time() -> None:
    someone = person(date(1966, 11, 19))
    # 2026-11-19 00:00 in China is 2026-11-18 16:00 UTC.
    assert code_category(someone, epoch(2026, 11, 18, hour_utc=15, minute=59, second=59)) is None
    assert code_category(someone, epoch(2026, 11, 18, hour_utc=16)) == "senior"
    assert code_category(someone, epoch(2030, 1, 1)) == "senior"


def test_not_yet_sixty() -> None:
    assert code_category(person(date(1966, 11, 19)), NOW) is None  # NOW: 2026-11-18 17:46 in China
    assert code_category(person(date(1966, 11, 18)), NOW) == "senior"


def test_born_on_29_february() -> None:
    leapling = person(date(1964, 2, 29))
    # 61 in 2025, a common year: from 1 March, not 28 February.
    assert code_category(leapling, epoch(2025, 2, 28, hour_utc=12), senior_age=61) is None
    assert code_category(leapling, epoch(2025, 2, 28, hour_utc=16), senior_age=61) == "senior"  # 1 March in China
    assert age_on(date(1964, 2, 29), date(2024, 2, 29)) == 60
    assert age_on(date(1964, 2, 29), date(2024, 2, 28)) == 59


@pytest.mark.parametrize(
    ("birth_date", "category", "expected"),
    [
        (None, None, None),
        (None, "student", "student"),  # a passport holder: no birth date, only what is set
        (date(1990, 1, 1), "child", "child"),
        (date(1950, 1, 1), None, "senior"),
        (date(1950, 1, 1), "student", "senior"),
        (date(1950, 1, 1), "child", "senior"),
        (date(1950, 1, 1), "disabled", "disabled"),
        (date(1990, 1, 1), "disabled", "disabled"),
    ],
)
def test_which_category_wins(birth_date: date | None, category: str | None, expected: str | None) -> None:
    assert code_category(person(birth_date, category), NOW) == expected


@pytest.mark.parametrize(
    ("birth", "day", "age"),
    [
        (date(1966, 11, 18), date(2026, 11, 17), 59),
        (date(1966, 11, 18), date(2026, 11, 18), 60),
        (date(1966, 12, 31), date(2027, 1, 1), 60),
        (date(2000, 1, 1), date(2000, 1, 1), 0),
    ],
)
def test_age_on(birth: date, day: date, age: int) -> None:
    assert age_on(birth, day) == age


# -- masked names ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "masked"),
    [
        ("张三明", "张*明"),
        ("张三", "张*"),
        ("张", "张"),
        ("欧阳娜娜", "欧**娜"),
        ("阿沛·阿旺晋美", "阿*****美"),
        ("John Smith", "J*** S****"),
        ("Zoë", "Z**"),
        ("Chan Tai Man", "C*** T** M**"),
        ("X", "X"),
    ],
)
def test_masked_name(name: str, masked: str) -> None:
    assert masked_name(name) == masked
