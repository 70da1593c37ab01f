"""verifiers.cbor: the strict subset section 9 reads, and the deterministic encoder the service mints with."""

from __future__ import annotations

import time

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from verifiers.cbor import MAX_DEPTH, CborError, Simple, Tag, dumps, loads


@pytest.mark.parametrize(
    ("hex_bytes", "value"),
    [
        ("00", 0),
        ("17", 23),
        ("1818", 24),
        ("1903e8", 1000),
        ("1bffffffffffffffff", 2**64 - 1),
        ("20", -1),
        ("3bffffffffffffffff", -(2**64)),
        ("40", b""),
        ("4401020304", b"\x01\x02\x03\x04"),
        ("60", ""),
        ("63e5bca0", "张"),
        ("80", []),
        ("83010203", [1, 2, 3]),
        ("a201020304", {1: 2, 3: 4}),
        ("f4", False),
        ("f5", True),
        ("f6", None),
        ("d2820102", Tag(18, [1, 2])),
    ],
)
def test_rfc_8949_appendix_a_items(hex_bytes: str, value: object) -> None:
    data = bytes.fromhex(hex_bytes)
    assert loads(data) == value and type(loads(data)) is type(value)
    assert dumps(value) == data


@pytest.mark.parametrize(
    "hex_bytes",
    ["1800", "190000", "1a00000000", "1b0000000000000000", "3800"],
    ids=["1-byte", "2-byte", "4-byte", "8-byte", "negative"],
)
def test_longer_than_needed_integer_heads_are_accepted(hex_bytes: str) -> None:
    assert loads(bytes.fromhex(hex_bytes)) in (0, -1)


def test_longer_than_needed_length_heads_are_accepted() -> None:
    assert loads(bytes.fromhex("5800")) == b"" and loads(bytes.fromhex("b9000101f5")) == {1: True}


@pytest.mark.parametrize(
    ("hex_bytes", "reason"),
    [
        ("", "ends"),
        ("19", "ends"),  # head cut short
        ("1a0000", "head"),
        ("43010203ff", "trail"),
        ("0000", "trail"),
        ("5f4101ff", "indefinite"),  # indefinite byte string
        ("7f6161ff", "indefinite"),
        ("9f01ff", "indefinite"),  # indefinite array
        ("bf0101ff", "indefinite"),  # indefinite map
        ("ff", "indefinite"),  # a break outside one
        ("1c", "reserved"),
        ("5d", "reserved"),
        ("a201010102", "duplicate"),
        ("a2180101 0102", "duplicate"),  # 1 with a long head is still 1
        ("a2616101616102", "duplicate"),
        ("a2 41aa 01 41aa 02", "duplicate"),
        ("a2 820102 01 820102 02", "duplicate"),  # array keys
        ("a2 f5 01 f5 02", "duplicate"),
        ("f90000", "float"),
        ("fa00000000", "float"),
        ("fb3ff0000000000000", "float"),
        ("f800", "simple"),
        ("f81f", "simple"),
        ("c11a514b67b0", "tag 1"),
        ("d1820102", "tag 17"),
        ("d818 820102", "tag 24"),
        ("c2 41 01", "tag 2"),  # bignum
        ("62c328", "UTF-8"),  # a truncated sequence
        ("63eda080", "UTF-8"),  # an encoded surrogate
        ("62c0af", "UTF-8"),  # overlong
        ("a1 62c328 01", "UTF-8"),  # in a map key
    ],
)
def test_refused(hex_bytes: str, reason: str) -> None:
    with pytest.raises(CborError, match=reason):
        loads(bytes.fromhex(hex_bytes.replace(" ", "")))


def test_keys_of_different_types_are_not_duplicates() -> None:
    assert loads(bytes.fromhex("a4 01 00 f5 01 6131 02 4131 03".replace(" ", ""))) == {
        1: 0,
        Simple(21): 1,  # true is not 1
        "1": 2,
        b"1": 3,
    }


def test_undefined_and_unassigned_simple_values() -> None:
    assert loads(b"\xf7") == Simple(23) and loads(b"\xf8\x20") == Simple(32) and loads(b"\xe0") == Simple(0)


def nested_arrays(depth: int) -> bytes:
    return b"\x81" * (depth - 1) + b"\x80"


def test_nesting_to_the_limit_is_fine_and_one_more_is_refused() -> None:
    assert loads(nested_arrays(MAX_DEPTH)) is not None
    with pytest.raises(CborError, match="nesting"):
        loads(nested_arrays(MAX_DEPTH + 1))
    with pytest.raises(CborError, match="nesting"):
        loads(b"\xa1\x01" * MAX_DEPTH + b"\xa0")  # 17 maps
    with pytest.raises(CborError, match="nesting"):
        loads(b"\xd2" * MAX_DEPTH + b"\x80")  # 16 tags around an array


def test_deep_nesting_does_not_recurse_without_bound() -> None:
    with pytest.raises(CborError, match="nesting"):
        loads(nested_arrays(100_000))


@pytest.mark.parametrize(
    "head",
    ["5b7fffffffffffffff", "7b7fffffffffffffff", "9b7fffffffffffffff", "bb7fffffffffffffff", "5bffffffffffffffff"],
    ids=["bytes", "text", "array", "map", "bytes-2^64"],
)
def test_huge_declared_lengths_are_refused_without_allocating(head: str) -> None:
    start = time.perf_counter()
    with pytest.raises(CborError, match="longer than the bytes left"):
        loads(bytes.fromhex(head) + b"\x00" * 16)
    assert time.perf_counter() - start < 0.05


def test_deterministic_encoding_sorts_map_keys_by_their_bytes() -> None:
    # RFC 8949 4.2.1: bytewise order of the encoded keys: 1, 4, -1, "scp", "use"
    assert dumps({"use": 0, -1: 0, "scp": 0, 4: 0, 1: 0}) == bytes.fromhex(
        "a5010004002000637363700063757365 00".replace(" ", "")
    )


cbor_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**64), 2**64 - 1) | st.binary(max_size=20) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.integers(-100, 100) | st.text(max_size=5), children, max_size=4),
    max_leaves=20,
)


@given(cbor_values)
def test_round_trip_and_cbor2_agrees(value: object) -> None:
    encoded = dumps(value)
    assert loads(encoded) == value
    assert cbor2.loads(encoded) == value  # cbor2 comes with pycose (the test extra)
    # (not cbor2.dumps(canonical=True): that sorts keys length-first, RFC 7049's
    # canonical order; RFC 8949 4.2.1's is bytewise, as -1 (0x20) after 24 (0x1818))
