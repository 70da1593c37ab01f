"""Registration input: validation and normalisation. Pure: no Flask, no database.

Each check raises :class:`~codeservice.errors.InvalidField` (HTTP 422) naming
the field and a stable code. A message never repeats the value it rejects, so
that an error (or a log line quoting one) never carries personal data.

What is accepted, and why
-------------------------

All identifiers are first made ASCII where a Chinese input method would make
them full-width (``１３８…``, ``Ｅ１２…``, the ideographic space), then
stripped of surrounding whitespace and of the spaces and hyphens people type
to group digits.

``name`` (``invalid_name``)
    NFC-normalised, surrounding whitespace stripped and inner runs of
    whitespace made one space; then 1 to 50 characters, none of them a control
    or format character (``\\n``, NUL, zero-width and bidirectional controls),
    a surrogate or a line/paragraph separator. Private-use characters are
    allowed: rare name characters not yet in Unicode are carried in the
    private-use area by Chinese systems (GB 18030).

``id_type`` (``invalid_id_type``)
    exactly one of ``resident_id``, ``passport``, ``hk_macao_permit``,
    ``taiwan_permit``.

``id_number`` (``invalid_id_number``), by ``id_type``:

``resident_id`` (居民身份证, GB 11643-1999)
    18 characters: 17 digits and a check character, a digit or ``X`` (``x``
    accepted, stored upper-case), which must be the ISO 7064 MOD 11-2 check
    character of the 17 digits. Characters 7-14 are the birth date
    (``YYYYMMDD``): a real calendar date, from 1900-01-01 to today (China
    time). The first two digits must be a province-level code of GB/T 2260
    (11-15, 21-23, 31-37, 41-46, 50-54, 61-65), or 71 (Taiwan), 81 (Hong Kong),
    82 (Macao) or 83: the residence permits of Hong Kong, Macao and Taiwan
    residents (港澳台居民居住证, since 2018) are numbered in this same format with
    the address codes 810000, 820000 and 830000. For the mainland provinces the
    six-digit address code must name a place below the province (not end in
    ``0000``): a province is never a place of household registration. The
    county part is not checked against the GB/T 2260 list: codes are
    withdrawn as counties merge, while the ID numbers issued under them stay
    valid for life. The first-generation 15-digit numbers are refused: those
    cards ceased to be valid in 2013.

``passport``
    5 to 20 letters and digits (stored upper-case), at least one a digit.
    There is no nationality field, so a foreign passport cannot be told from
    a Chinese one; every Chinese passport format (``E`` + 8 digits, ``E`` + a
    letter + 7 digits, the older ``G`` + 8 digits, and the ``D``/``S``/``P``
    official ones) satisfies this rule, and a stricter rule for numbers that
    merely look Chinese would refuse real foreign passports. ICAO 9303
    document numbers are at most 9 characters in the machine-readable zone,
    with a longer number continued in the optional field, so 20 is ample.

``hk_macao_permit``
    the Home Return Permit of Hong Kong and Macao residents (港澳居民来往内地
    通行证): ``H`` (Hong Kong) or ``M`` (Macao) and 8 digits, the holder's
    lifelong number on the card issued since 2013, or ``H``/``M`` and 10 digits
    on the older booklet, whose last two digits count the issues. Both are
    stored as the letter and the 8-digit lifelong number, so a renewed permit
    is the same identity. Also accepted: ``C`` and 8 letters or digits, the
    card-type Exit-Entry Permit for Travelling to and from Hong Kong and Macao
    (往来港澳通行证), stored as typed (upper-case).

``taiwan_permit`` (台湾居民来往大陆通行证, 台胞证)
    8 digits, the holder's lifelong number (一人一号、终身不变 since 2008), or
    the older 10 digits (that number and a 2-digit issue count), optionally
    followed by the issuing office's code in brackets, e.g.
    ``1234567801(B)``. All are stored as the 8-digit lifelong number.

``phone`` (``invalid_phone``)
    a mainland mobile number, ``1[3-9]`` and 9 more digits, after removing
    spaces, hyphens, dots and brackets and an optional ``+86``, ``0086`` or
    ``86`` country code; stored as the 11 digits.

``password`` (``weak_password``)
    NFKC-normalised (as NIST SP 800-63B suggests: the same password typed
    with a full-width input method or another composition is the same
    password; login normalises the same way), then 10 to 200 characters, not
    one character repeated, not a plain run such as ``1234567890`` or
    ``qwertyuiop``, and not containing the phone number or the ID number,
    which other people know. Passphrases are welcome: spaces count.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from verifiers.shapes import Member

from .errors import InvalidField, MissingField, WrongFieldType

__all__ = [
    "ID_TYPES",
    "MAX_NAME_LENGTH",
    "MAX_PASSWORD_LENGTH",
    "MIN_PASSWORD_LENGTH",
    "REGISTRATION",
    "Registration",
    "check_password",
    "gb11643_check_character",
    "normalize_id_number",
    "normalize_name",
    "normalize_password",
    "normalize_phone",
    "validate_registration",
]

ID_TYPES = ("resident_id", "passport", "hk_macao_permit", "taiwan_permit")
MAX_NAME_LENGTH = 50
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 200
EARLIEST_BIRTH_DATE = date(1900, 1, 1)

REGISTRATION: tuple[Member, ...] = (
    Member(
        "name",
        {"type": "string", "minLength": 1},
        f"The full name: 1 to {MAX_NAME_LENGTH} characters once spaces are trimmed (`invalid_name`).",
    ),
    Member("id_type", {"type": "string", "enum": list(ID_TYPES)}, "The identity document's kind (`invalid_id_type`)."),
    Member(
        "id_number",
        {"type": "string"},
        "The document's number; a `resident_id` is 18 characters with a GB 11643 check character "
        "(`invalid_id_number`).",
    ),
    Member(
        "phone",
        {"type": "string"},
        "A mainland mobile number, 11 digits from 13 to 19; spaces, hyphens and +86 are accepted (`invalid_phone`).",
    ),
    Member(
        "password",
        {"type": "string", "minLength": MIN_PASSWORD_LENGTH, "maxLength": MAX_PASSWORD_LENGTH},
        f"{MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters, not a plain run, "
        "not containing the phone or ID number (`weak_password`).",
    ),
)
"""A registration (``POST /api/v1/residents``, the /register form), in the order its fields are checked."""

# GB/T 2260 province-level codes, plus 71 (Taiwan), 81 (Hong Kong), 82
# (Macao) and 83 (the Taiwan residents' residence permit, 830000).
PROVINCE_CODES = frozenset(
    [*range(11, 16), *range(21, 24), *range(31, 38), *range(41, 47), *range(50, 55), *range(61, 66)]
)
SPECIAL_REGION_CODES = frozenset({71, 81, 82, 83})

_GB11643_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_GB11643_CHECK = "10X98765432"

# Full-width ASCII (U+FF01..U+FF5E) and the ideographic space, as a Chinese
# input method types them, made ASCII.
_FULL_WIDTH = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}
_SEPARATORS = re.compile(r"[\s\-\u2010-\u2015]+")

_RESIDENT_ID = re.compile(r"[0-9]{17}[0-9X]\Z")
_PASSPORT = re.compile(r"[A-Z0-9]{5,20}\Z")
_HOME_RETURN_PERMIT = re.compile(r"([HM][0-9]{8})(?:[0-9]{2})?\Z")
_HK_MACAO_EEP = re.compile(r"C[A-Z0-9]{8}\Z")
_TAIWAN_PERMIT = re.compile(r"([0-9]{8})(?:[0-9]{2}(?:\([A-Z0-9]\))?)?\Z")
_MOBILE = re.compile(r"1[3-9][0-9]{9}\Z")
_PHONE_NOISE = re.compile(r"[\s\-.()\u2010-\u2015]+")

# Spaces inside a name (ASCII, no-break, ideographic) are made one ASCII space.
_NAME_SPACES = re.compile(r"[ \u00a0\u3000]+")
# Characters a name must not hold: controls, format characters (zero-width,
# bidirectional overrides), surrogates, line and paragraph separators.
_FORBIDDEN_IN_NAME = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})

_KEYBOARD_RUNS = (
    "01234567890123456789",
    "abcdefghijklmnopqrstuvwxyz",
    "qwertyuiopasdfghjklzxcvbnm",
    "1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik9ol0p",
)


@dataclass(frozen=True)
class Registration:
    """A registration's fields, validated and normalised.

    ``repr`` leaves out the identifying fields and the password, so a stray
    log line or traceback showing this object discloses nothing.
    """

    name: str = field(repr=False)
    id_type: str
    id_number: str = field(repr=False)
    phone: str = field(repr=False)
    password: str = field(repr=False)
    birth_date: date | None = field(default=None, repr=False)
    """From a resident ID number; None for the other documents."""


def validate_registration(fields: Mapping[str, Any], *, today: date) -> Registration:
    """The registration in ``fields``, normalised; InvalidField for the first field that will not do.

    ``today`` is the date in China (UTC+8), for the birth date check. The
    fields are checked in the order name, id_type, id_number, phone, password.
    """
    name = normalize_name(_text(fields, "name"))
    id_type = _text(fields, "id_type")
    id_number, birth_date = normalize_id_number(id_type, _text(fields, "id_number"), today=today)
    phone = normalize_phone(_text(fields, "phone"))
    password = check_password(_text(fields, "password"), known=(phone, id_number))
    return Registration(
        name=name,
        id_type=id_type,
        id_number=id_number,
        phone=phone,
        password=password,
        birth_date=birth_date,
    )


def _text(fields: Mapping[str, Any], name: str) -> str:
    value = fields.get(name)
    if value is None:
        raise MissingField(f"the field {name!r} is required")
    if not isinstance(value, str):
        raise WrongFieldType(f"the field {name!r} must be a string")
    return value


# -- name ----------------------------------------------------------------------


def normalize_name(value: str) -> str:
    """The name, NFC, trimmed, inner whitespace runs made one space; ``invalid_name`` otherwise."""
    if not is_utf8_text(value):
        raise InvalidField("name", "the name holds characters that are not text", code="invalid_name")
    name = _NAME_SPACES.sub(" ", unicodedata.normalize("NFC", value)).strip()
    if not name:
        raise InvalidField("name", "the name is empty", code="invalid_name")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidField("name", f"the name is longer than {MAX_NAME_LENGTH} characters", code="invalid_name")
    if any(unicodedata.category(ch) in _FORBIDDEN_IN_NAME for ch in name):
        raise InvalidField("name", "the name holds control or invisible characters", code="invalid_name")
    return name


# -- identity documents --------------------------------------------------------


def normalize_id_number(id_type: str, value: str, *, today: date) -> tuple[str, date | None]:
    """The document number in its stored form, and the birth date it encodes (resident IDs only)."""
    if id_type not in ID_TYPES:
        raise InvalidField(
            "id_type", f"id_type must be one of {', '.join(ID_TYPES)}", code="invalid_id_type"
        )
    number = _ascii_identifier(value)
    if id_type == "resident_id":
        return number, _check_resident_id(number, today)
    if id_type == "passport":
        return _check_passport(number), None
    if id_type == "hk_macao_permit":
        return _check_hk_macao_permit(number), None
    return _check_taiwan_permit(number), None


def _ascii_identifier(value: str) -> str:
    """Full-width made ASCII, separators (spaces, hyphens) removed, upper-case."""
    return _SEPARATORS.sub("", value.translate(_FULL_WIDTH)).upper()


def _bad_number(message: str) -> InvalidField:
    return InvalidField("id_number", message, code="invalid_id_number")


def gb11643_check_character(body17: str) -> str:
    """The GB 11643 (ISO 7064 MOD 11-2) check character of 17 digits."""
    total = sum(int(digit) * weight for digit, weight in zip(body17, _GB11643_WEIGHTS, strict=True))
    return _GB11643_CHECK[total % 11]


def _check_resident_id(number: str, today: date) -> date:
    if not _RESIDENT_ID.match(number):
        raise _bad_number("a resident ID number is 17 digits and a check digit or X")
    if gb11643_check_character(number[:17]) != number[17]:
        raise _bad_number("the resident ID number's check digit is wrong; check for a typing error")
    province = int(number[:2])
    if province not in PROVINCE_CODES and province not in SPECIAL_REGION_CODES:
        raise _bad_number("the resident ID number does not start with a region code")
    if province in PROVINCE_CODES and number[2:6] == "0000":
        raise _bad_number("the resident ID number does not start with a region code")
    try:
        birth_date = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        raise _bad_number("the resident ID number does not hold a real birth date") from None
    if birth_date < EARLIEST_BIRTH_DATE:
        raise _bad_number("the resident ID number's birth date is before 1900")
    if birth_date > today:
        raise _bad_number("the resident ID number's birth date is in the future")
    return birth_date


def _check_passport(number: str) -> str:
    if not _PASSPORT.match(number) or not any(ch.isdigit() for ch in number):
        raise _bad_number("a passport number is 5 to 20 letters and digits")
    return number


def _check_hk_macao_permit(number: str) -> str:
    match = _HOME_RETURN_PERMIT.match(number)
    if match:
        return match.group(1)
    if _HK_MACAO_EEP.match(number):
        return number
    raise _bad_number("a Hong Kong or Macao permit number is H or M and 8 or 10 digits, or C and 8 characters")


def _check_taiwan_permit(number: str) -> str:
    match = _TAIWAN_PERMIT.match(number)
    if not match:
        raise _bad_number("a Taiwan permit number is 8 digits (or 10 on the older permits)")
    return match.group(1)


# -- phone ---------------------------------------------------------------------


def normalize_phone(value: str) -> str:
    """A mainland mobile number as 11 digits; ``invalid_phone`` otherwise."""
    phone = _PHONE_NOISE.sub("", value.translate(_FULL_WIDTH))
    for prefix in ("+86", "0086", "86"):
        if phone.startswith(prefix) and len(phone) == len(prefix) + 11:
            phone = phone[len(prefix):]
            break
    if not _MOBILE.match(phone):
        raise InvalidField(
            "phone", "a phone number is a mainland mobile number: 11 digits starting 13-19", code="invalid_phone"
        )
    return phone


# -- password ------------------------------------------------------------------


def normalize_password(value: str) -> str:
    """NFKC, as at registration; the same at login so that both compare alike."""
    return unicodedata.normalize("NFKC", value)


def check_password(value: str, *, known: tuple[str, ...] = ()) -> str:
    """The password, NFKC-normalised, if strong enough; ``weak_password`` otherwise.

    ``known``: values others may know (the phone, the ID number) that the
    password must not contain.
    """

    def weak(message: str) -> InvalidField:
        return InvalidField("password", message, code="weak_password")

    if not is_utf8_text(value):
        raise weak("the password holds characters that are not text")
    password = normalize_password(value)
    if len(password) < MIN_PASSWORD_LENGTH:
        raise weak(f"the password must be at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise weak(f"the password must be at most {MAX_PASSWORD_LENGTH} characters")
    if len(set(password)) == 1:
        raise weak("the password must not be one character repeated")
    lowered = password.lower()
    if any(lowered in run or lowered in run[::-1] for run in _KEYBOARD_RUNS):
        raise weak("the password must not be a plain run of keys, such as the digits in order")
    if any(item and item.lower() in lowered for item in known):
        raise weak("the password must not contain the phone number or the ID number")
    return password


def is_utf8_text(value: str) -> bool:
    """False for a string with lone surrogates (JSON "\\ud800"), which cannot be UTF-8."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
