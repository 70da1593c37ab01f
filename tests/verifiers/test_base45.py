"""verifiers.base45: RFC 9285's examples both ways, and every way strictness refuses."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from verifiers.base45 import ALPHABET, Base45Error, b45decode, b45encode

RFC_9285_EXAMPLES = [  # section 4.3
    (b"AB", "BB8"),
    (b"Hello!!", "%69 VD92EX0"),
    (b"base-45", "UJCLQE7W581"),
]


@pytest.mark.parametrize(("data", "text"), RFC_9285_EXAMPLES)
def test_rfc_9285_examples_encode_and_decode(data: bytes, text: str) -> None:
    assert b45encode(data) == text
    assert b45decode(text) == data


def test_rfc_9285_decoding_example() -> None:
    assert b45decode("QED8WEX0") == b"ietf!"


def test_empty() -> None:
    assert b45encode(b"") == "" and b45decode("") == b""


@given(st.binary(max_size=300))
def test_round_trip(data: bytes) -> None:
    assert b45decode(b45encode(data)) == data


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("bb8", "alphabet"),  # lowercase: RFC 9285's alphabet is uppercase only
        ("BB8 b", "alphabet"),
        ("BB8\n", "alphabet"),
        ("ＢB8", "alphabet"),  # fullwidth B
        ("BB8=", "alphabet"),
        ("B", "1 (mod 3)"),
        ("BB8B", "1 (mod 3)"),
        ("GGW", "65535"),  # 16 + 16*45 + 32*2025 = 65536
        (":::", "65535"),  # the largest group, 44*2026*... = 91124
        ("V5", "255"),  # 31 + 5*45 = 256
        ("::", "255"),
    ],
)
def test_strictness(text: str, reason: str) -> None:
    with pytest.raises(Base45Error, match=reason.replace("(", r"\(").replace(")", r"\)")):
        b45decode(text)


def test_the_largest_values_in_range_decode() -> None:
    assert b45decode("FGW") == b"\xff\xff"  # 15 + 16*45 + 32*2025 = 65535
    assert b45decode("U5") == b"\xff"  # 30 + 5*45 = 255


def test_every_alphabet_character_decodes() -> None:
    assert len(ALPHABET) == 45
    for character in ALPHABET:
        b45decode(character + "00")
