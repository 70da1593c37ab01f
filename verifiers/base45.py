"""Base45 (RFC 9285), strict: the text of contract section 9's device and paper codes.

Decoding refuses anything RFC 9285 does not write: a character outside its
45-character alphabet (lowercase included), a length ≡ 1 (mod 3), and a group
whose value is out of range (a 3-character group over 65535, a final pair
over 255). Pure and allocation-bounded: the output is at most 2/3 the input.
"""

from __future__ import annotations

import re

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"

_STRICT = re.compile("[0-9A-Z $%*+\\-./:]*\\Z")
_VALUES = bytes.maketrans(ALPHABET.encode("ascii"), bytes(range(45)))


class Base45Error(ValueError):
    """The text is not strict Base45."""


def b45decode(text: str) -> bytes:
    """Decode strict Base45; :class:`Base45Error` names what is wrong."""
    if _STRICT.match(text) is None:
        raise Base45Error("a character outside the Base45 alphabet")
    size = len(text)
    if size % 3 == 1:
        raise Base45Error("a Base45 length of 1 (mod 3)")
    digits = text.encode("ascii").translate(_VALUES)
    whole = size - size % 3
    groups = whole // 3
    # RFC 9285 4.2: each group is c + d*45 + e*45*45. Computed for all groups
    # at once: each digit column goes into its own 24-bit lane of one big
    # integer (no group's value, at most 91124, carries into the next lane).
    lanes = bytearray(3 * groups)
    lanes[2::3] = digits[0:whole:3]
    c = int.from_bytes(lanes, "big")
    lanes[2::3] = digits[1:whole:3]
    d = int.from_bytes(lanes, "big")
    lanes[2::3] = digits[2:whole:3]
    e = int.from_bytes(lanes, "big")
    values = (c + d * 45 + e * 2025).to_bytes(3 * groups, "big")
    if values[0::3].count(0) != groups:  # a lane over 16 bits: a group over 65535
        raise Base45Error("a Base45 group decodes to more than 65535")
    data = bytearray(2 * groups)
    data[0::2] = values[1::3]
    data[1::2] = values[2::3]
    if whole != size:
        last = digits[whole] + digits[whole + 1] * 45
        if last > 0xFF:
            raise Base45Error("the final Base45 pair decodes to more than 255")
        data.append(last)
    return bytes(data)


def b45encode(data: bytes) -> str:
    """Encode bytes as Base45 (RFC 9285 4)."""
    out = []
    alphabet = ALPHABET
    whole = len(data) - len(data) % 2
    for index in range(0, whole, 2):
        value = data[index] * 256 + data[index + 1]
        value, c = divmod(value, 45)
        e, d = divmod(value, 45)
        out.append(alphabet[c] + alphabet[d] + alphabet[e])
    if whole != len(data):
        d, c = divmod(data[-1], 45)
        out.append(alphabet[c] + alphabet[d])
    return "".join(out)
