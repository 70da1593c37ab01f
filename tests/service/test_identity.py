"""codeservice.identity: registration input, validated and normalised (pure: no app, no database)."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from helpers import DEMO_PASSWORD, gb11643_id

from codeservice.errors import InvalidField, MissingField, WrongFieldType
from codeservice.identity import (
    ID_TYPES,
    Registration,
    check_password,
    gb11643_check_character,
    normalize_id_number,
    normalize_name,
    normalize_phone,
    validate_registration,
)

TODAY = date(2026, 11, 18)  # the day of helpers.NOW in China


def number(id_type: str, value: str) -> str:
    return normalize_id_number(id_type, value, today=TODAY)[0]


def rejected(id_type: str, value: str) -> InvalidField:
    with pytest.raises(InvalidField) as caught:
        normalize_id_number(id_type, value, today=TODAY)
    error = caught.value
    assert (error.field, error.code, error.status) == ("id_number", "invalid_id_number", 422)
    assert value.strip() not in error.message or len(value.strip()) < 3, "the message must not repeat the number"
    return error


# -- GB 11643 check character --------------------------------------------------


def test_check_character_of_the_standards_example() -> None:
    # GB 11643-1999's worked example, whose check character is X.
    assert gb11643_check_character("11010519491231002") == "X"


@pytest.mark.parametrize("body", ["31010419900101123", "44030419851231000", "65010120010909876", "11010519491231002"])
def test_check_character_agrees_with_the_fixture_helper(body: str) -> None:
    assert body + gb11643_check_character(body) == gb11643_id(body)


def test_exactly_one_check_character_is_accepted() -> None:
    body = "31010419900101123"
    accepted = [c for c in "0123456789X" if _ok("resident_id", body + c)]
    assert accepted == [gb11643_check_character(body)]


def _ok(id_type: str, value: str) -> bool:
    try:
        normalize_id_number(id_type, value, today=TODAY)
    except InvalidField:
        return False
    return True


# -- resident ID ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "stored", "born"),
    [
        ("11010519491231002X", "11010519491231002X", date(1949, 12, 31)),
        ("11010519491231002x", "11010519491231002X", date(1949, 12, 31)),  # lower-case x
        (" 110105 19491231 002X\n", "11010519491231002X", date(1949, 12, 31)),  # grouped, padded
        ("110105-19491231-002X", "11010519491231002X", date(1949, 12, 31)),
        ("１１０１０５１９４９１２３１００２Ｘ", "11010519491231002X", date(1949, 12, 31)),  # full-width
        (gb11643_id("31010419900101123"), gb11643_id("31010419900101123"), date(1990, 1, 1)),
        (gb11643_id("11010520000229001"), gb11643_id("11010520000229001"), date(2000, 2, 29)),  # leap day
        (gb11643_id("11010519000101001"), gb11643_id("11010519000101001"), date(1900, 1, 1)),  # earliest
        (gb11643_id("31010420261118001"), gb11643_id("31010420261118001"), TODAY),  # born today
        (gb11643_id("65010120010909876"), gb11643_id("65010120010909876"), date(2001, 9, 9)),
        # Residence permits of Hong Kong, Macao and Taiwan residents: 810000, 820000, 830000.
        (gb11643_id("81000019900101001"), gb11643_id("81000019900101001"), date(1990, 1, 1)),
        (gb11643_id("82000019900101001"), gb11643_id("82000019900101001"), date(1990, 1, 1)),
        (gb11643_id("83000019900101001"), gb11643_id("83000019900101001"), date(1990, 1, 1)),
        (gb11643_id("71000019900101001"), gb11643_id("71000019900101001"), date(1990, 1, 1)),
    ],
)
def test_valid_resident_ids(given: str, stored: str, born: date) -> None:
    assert normalize_id_number("resident_id", given, today=TODAY) == (stored, born)


@pytest.mark.parametrize(
    "value",
    [
        "11010519491231002",  # 17 characters
        "11010519491231002X1",  # 19
        "110105491231002",  # the first-generation 15-digit number
        "1101051949123100X2",  # X not last
        "11010519491231002Y",
        "A1010519491231002X",
        "",
        "１",
    ],
)
def test_resident_id_of_the_wrong_shape(value: str) -> None:
    rejected("resident_id", value)


@pytest.mark.parametrize(
    "value", ["110105194912310021", "110105194912310020", "310104199001011230", "31010419900101123X"]
)
def test_resident_id_with_a_wrong_check_digit(value: str) -> None:
    assert "check digit" in rejected("resident_id", value).message


@pytest.mark.parametrize(
    "date_part",
    [
        "19900230",  # 30 February
        "19000229",  # 1900 was not a leap year
        "20230229",
        "19901301",  # month 13
        "19900001",
        "19900100",
        "19900431",
    ],
)
def test_resident_id_with_an_impossible_birth_date(date_part: str) -> None:
    error = rejected("resident_id", gb11643_id(f"310104{date_part}001"))
    assert "birth date" in error.message


@pytest.mark.parametrize("date_part", ["20261119", "20270101", "29991231"])
def test_resident_id_born_in_the_future(date_part: str) -> None:
    assert "future" in rejected("resident_id", gb11643_id(f"310104{date_part}001")).message


@pytest.mark.parametrize("date_part", ["18991231", "18800101"])
def test_resident_id_born_before_1900(date_part: str) -> None:
    # 440524188001010014 is the example in GB 11643-1999 itself.
    assert "1900" in rejected("resident_id", gb11643_id(f"440524{date_part}001")).message


@pytest.mark.parametrize(
    "region",
    ["00", "10", "16", "20", "24", "30", "38", "40", "47", "49", "55", "60", "66", "70", "72", "80", "84", "90", "99"],
)
def test_resident_id_outside_the_province_codes(region: str) -> None:
    assert "region" in rejected("resident_id", gb11643_id(f"{region}010519900101001")).message


@pytest.mark.parametrize("province", ["11", "15", "21", "23", "31", "37", "41", "46", "50", "54", "61", "65"])
def test_every_end_of_the_province_ranges_is_accepted(province: str) -> None:
    assert _ok("resident_id", gb11643_id(f"{province}010119900101001"))


@pytest.mark.parametrize("prefix", ["110000", "310000", "650000"])
def test_resident_id_naming_a_whole_province(prefix: str) -> None:
    assert "region" in rejected("resident_id", gb11643_id(f"{prefix}19900101001")).message


# -- passport ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("E12345678", "E12345678"),  # Chinese e-passport
        ("EA1234567", "EA1234567"),  # Chinese, after the E + 8 digits ran out
        ("G12345678", "G12345678"),  # Chinese, older
        ("e12345678", "E12345678"),
        ("Ｅ１２３４５６７８", "E12345678"),
        ("C01X00T47", "C01X00T47"),  # German
        ("123456789", "123456789"),  # United States
        ("AB 123 456", "AB123456"),
        ("X1234", "X1234"),  # 5, the shortest
        ("A1234567890123456789", "A1234567890123456789"),  # 20, the longest
    ],
)
def test_valid_passports(given: str, stored: str) -> None:
    assert normalize_id_number("passport", given, today=TODAY) == (stored, None)


@pytest.mark.parametrize(
    "value",
    [
        "ABCDEFGH",  # no digit: a name in the wrong field
        "1234",  # too short
        "A12345678901234567890",  # 21
        "E1234567!",
        "E1234567_",
        "\u041512345678",  # a Cyrillic Е
        "",
    ],
)
def test_invalid_passports(value: str) -> None:
    rejected("passport", value)


# -- Hong Kong and Macao permits --------------------------------------------------


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("H12345678", "H12345678"),  # Home Return Permit card (Hong Kong)
        ("M12345678", "M12345678"),  # (Macao)
        ("H1234567801", "H12345678"),  # older booklet: the lifelong number and the issue count
        ("M1234567803", "M12345678"),
        ("h12345678", "H12345678"),
        ("H 1234 5678", "H12345678"),
        ("C12345678", "C12345678"),  # Exit-Entry Permit card
        ("CA1234567", "CA1234567"),
        ("c1a2b3c4d", "C1A2B3C4D"),
    ],
)
def test_valid_hk_macao_permits(given: str, stored: str) -> None:
    assert normalize_id_number("hk_macao_permit", given, today=TODAY) == (stored, None)


@pytest.mark.parametrize(
    "value",
    ["H1234567", "H123456789", "H123456789012", "A12345678", "HA2345678", "C1234567", "C123456789", "12345678", ""],
)
def test_invalid_hk_macao_permits(value: str) -> None:
    rejected("hk_macao_permit", value)


def test_a_renewed_home_return_permit_is_the_same_identity() -> None:
    assert number("hk_macao_permit", "H1234567801") == number("hk_macao_permit", "H1234567802") == "H12345678"


# -- Taiwan permits ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("12345678", "12345678"),  # the lifelong number, on every permit since 2008
        ("1234567801", "12345678"),  # older: and the issue count
        ("1234567801(B)", "12345678"),  # and the issuing office
        ("1234567802(3)", "12345678"),
        ("1234567801（Ｂ）", "12345678"),  # typed full-width
        ("1234 5678", "12345678"),
    ],
)
def test_valid_taiwan_permits(given: str, stored: str) -> None:
    assert normalize_id_number("taiwan_permit", given, today=TODAY) == (stored, None)


@pytest.mark.parametrize(
    "value",
    ["1234567", "123456789", "12345678901", "A123456789", "12345678(B)", "1234567801(BB)", "1234567801()", ""],
)
def test_invalid_taiwan_permits(value: str) -> None:
    rejected("taiwan_permit", value)


# -- id_type -----------------------------------------------------------------------


@pytest.mark.parametrize("id_type", ["RESIDENT_ID", "resident-id", "driver_license", "", " passport"])
def test_unknown_id_types(id_type: str) -> None:
    with pytest.raises(InvalidField) as caught:
        normalize_id_number(id_type, "E12345678", today=TODAY)
    assert (caught.value.field, caught.value.code) == ("id_type", "invalid_id_type")


def test_the_four_id_types() -> None:
    assert ID_TYPES == ("resident_id", "passport", "hk_macao_permit", "taiwan_permit")


# -- phone -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "given",
    [
        "13812345678",
        "+8613812345678",
        "+86 138 1234 5678",
        "86-138-1234-5678",
        "8613812345678",
        "008613812345678",
        "(+86) 138-1234-5678",
        "138.1234.5678",
        "１３８１２３４５６７８",
        "＋８６　１３８１２３４５６７８",
        " 13812345678\n",
    ],
)
def test_phone_spellings_normalise_to_eleven_digits(given: str) -> None:
    assert normalize_phone(given) == "13812345678"


@pytest.mark.parametrize("prefix", ["13", "14", "15", "16", "17", "18", "19"])
def test_every_mobile_prefix(prefix: str) -> None:
    assert normalize_phone(prefix + "012345678 ") == prefix + "012345678"


@pytest.mark.parametrize(
    "value",
    [
        "12812345678",  # 12x is not a mobile prefix
        "10812345678",
        "23812345678",
        "1381234567",  # 10 digits
        "138123456789",  # 12
        "+85213812345678"[:-1],  # a Hong Kong country code
        "+8513812345678",
        "+86 1381234567",
        "138-1234-567a",
        "02112345678",  # a landline
        "",
        "+86",
    ],
)
def test_invalid_phones(value: str) -> None:
    with pytest.raises(InvalidField) as caught:
        normalize_phone(value)
    assert (caught.value.field, caught.value.code, caught.value.status) == ("phone", "invalid_phone", 422)


# -- name --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("张三明", "张三明"),
        ("  张三  ", "张三"),
        ("阿沛·阿旺晋美", "阿沛·阿旺晋美"),
        ("John  Smith", "John Smith"),
        ("John\u3000Smith", "John Smith"),
        ("Jose\u0301", "José"),  # NFC
        ("\ue000明", "\ue000明"),  # a private-use rare character
        ("𠀀", "𠀀"),  # CJK Extension B
        ("李" * 50, "李" * 50),
        ("X", "X"),
    ],
)
def test_valid_names(given: str, stored: str) -> None:
    assert normalize_name(given) == stored


@pytest.mark.parametrize(
    "value",
    [
        "", "   ", "\u3000", "李" * 51, "张\n三", "张\t三", "张\x00三", "张\u200b三", "\u202e张三", "张\u2028三",
        "张\ud800三", "\x7f",
    ],
)
def test_invalid_names(value: str) -> None:
    with pytest.raises(InvalidField) as caught:
        normalize_name(value)
    assert (caught.value.field, caught.value.code) == ("name", "invalid_name")


# -- password ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [DEMO_PASSWORD, "Tr0ub4dor&3x", "abcdefghiZ", "a" * 9 + "b", "密码是一句很长的中文句子", "x!" * 100],
)
def test_acceptable_passwords(value: str) -> None:
    assert check_password(value) == value


def test_a_full_width_password_is_the_ascii_one() -> None:
    assert check_password("ｐａｓｓｗｏｒｄ　１２３") == "password 123"


@pytest.mark.parametrize(
    "value",
    [
        "short1!",
        "123456789",  # 9 characters
        "x" * 201,
        "aaaaaaaaaaaa",
        "          ",
        "1234567890",
        "0987654321",
        "4567890123",
        "abcdefghijklmnop",
        "QWERTYUIOP",
        "zyxwvutsrq",
        "pass\ud800word123",
    ],
)
def test_weak_passwords(value: str) -> None:
    with pytest.raises(InvalidField) as caught:
        check_password(value)
    assert (caught.value.field, caught.value.code, caught.value.status) == ("password", "weak_password", 422)


def test_a_password_must_not_contain_the_phone_or_the_id_number() -> None:
    with pytest.raises(InvalidField, match="phone number or the ID number"):
        check_password("me13812345678", known=("13812345678", "11010519491231002X"))
    with pytest.raises(InvalidField, match="phone number or the ID number"):
        check_password("11010519491231002x!", known=("13812345678", "11010519491231002X"))


# -- the whole registration ----------------------------------------------------------


def fields(**overrides: Any) -> dict[str, Any]:
    body = {
        "name": " 张三明 ",
        "id_type": "resident_id",
        "id_number": "11010519491231002x",
        "phone": "+86 138 1234 5678",
        "password": DEMO_PASSWORD,
    }
    body.update(overrides)
    return body


def test_a_registration_is_normalised() -> None:
    registration = validate_registration(fields(), today=TODAY)
    assert registration == Registration(
        name="张三明",
        id_type="resident_id",
        id_number="11010519491231002X",
        phone="13812345678",
        password=DEMO_PASSWORD,
        birth_date=date(1949, 12, 31),
    )


def test_only_a_resident_id_gives_a_birth_date() -> None:
    registration = validate_registration(fields(id_type="passport", id_number="E12345678"), today=TODAY)
    assert (registration.id_number, registration.birth_date) == ("E12345678", None)


def test_the_repr_discloses_nothing() -> None:
    text = repr(validate_registration(fields(), today=TODAY))
    for secret in ("张三明", "11010519491231002X", "13812345678", DEMO_PASSWORD, "1949"):
        assert secret not in text


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("name", "", "invalid_name"),
        ("id_type", "id_card", "invalid_id_type"),
        ("id_number", "110105194912310021", "invalid_id_number"),
        ("phone", "12345", "invalid_phone"),
        ("password", "short", "weak_password"),
        ("password", "x13812345678", "weak_password"),
    ],
)
def test_each_field_is_checked(field: str, value: str, code: str) -> None:
    with pytest.raises(InvalidField) as caught:
        validate_registration(fields(**{field: value}), today=TODAY)
    assert (caught.value.field, caught.value.code) == (field, code)


def test_a_missing_or_mistyped_field() -> None:
    body = fields()
    del body["phone"]
    with pytest.raises(MissingField):
        validate_registration(body, today=TODAY)
    with pytest.raises(WrongFieldType):
        validate_registration(fields(phone=13812345678), today=TODAY)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("id_number", "11010519491231002Y"),
        ("id_number", "110105194912310021"),
        ("phone", "12812345678"),
        ("name", "张\n三明"),
        ("password", "1234567890"),
        ("password", "x13812345678"),
    ],
)
def test_messages_never_repeat_the_value(field: str, value: str) -> None:
    with pytest.raises(InvalidField) as caught:
        validate_registration(fields(**{field: value}), today=TODAY)
    assert value not in caught.value.message
    assert value not in str(caught.value)
