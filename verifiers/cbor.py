"""Strict CBOR (RFC 8949) of what contract section 9 needs, both ways.

A small decoder of our own rather than cbor2. Contract section 9 rule 1
refuses indefinite lengths, duplicate map keys, trailing bytes, floats, tags
other than 18 and deep nesting. cbor2 6.2 (checked 2026-12-05) can now be
told to refuse the first two (``allow_indefinite=False``,
``allow_duplicate_keys=False``) and bounds depth, but its ``loads`` still
ignores trailing bytes, accepts floats, decodes semantic tags (tag 2, a
bignum, arrives as an ``int`` where an ``exp`` is read) and counts ``true``
and ``1`` as one key. Its decode of a device code's six items took 8.6 µs
against this decoder's 20 µs here, but each of those holes would need a
walk or a wrapper of its own. Here every refusal is one line we own, and
``verifiers`` needs no third package.

Decoding (:func:`loads`) accepts exactly one well-formed, valid data item
(RFC 8949 section 5.3) and nothing after it, and refuses with
:class:`CborError`:

* indefinite lengths (additional information 31), reserved values (28-30);
* a length or count the remaining bytes cannot hold, checked before
  anything is allocated (a byte string "of 2**63 bytes" costs nothing);
* text that is not valid UTF-8;
* a map with two equal keys (equal as decoded values: ``1`` written with a
  long head is still ``1``);
* floats (half, single, double), two-byte simple values below 32;
* any tag but 18;
* containers (arrays, maps, tags) nested deeper than ``max_depth`` (16).

Integer heads longer than needed are accepted (RFC 8949 does not make them
invalid). false, true and null decode to ``False``, ``True`` and ``None``;
undefined and the unassigned simple values to :class:`Simple`; tag 18 to
:class:`Tag`. A map key that Python cannot hash or that equals a key of
another CBOR type (``true`` and ``1``) is kept as a frozen stand-in
(:class:`Simple`, tuple, frozenset), so no two distinct CBOR keys collide.

Encoding (:func:`dumps`) writes RFC 8949 section 4.2.1's core deterministic
encoding: shortest heads, map keys in bytewise order of their encodings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MAX_DEPTH = 16
ALLOWED_TAG = 18  # COSE_Sign1 (RFC 9052)


class CborError(ValueError):
    """The bytes are not one strict CBOR data item of this subset."""


@dataclass(frozen=True, slots=True)
class Tag:
    tag: int
    value: Any


@dataclass(frozen=True, slots=True)
class Simple:
    """A simple value other than false, true and null (or one of those as a map key)."""

    value: int


_FALSE, _TRUE, _NULL, _UNDEFINED = Simple(20), Simple(21), Simple(22), Simple(23)
_ARG_SIZES = {24: 1, 25: 2, 26: 4, 27: 8}
_MORE = object()
"""In :data:`_ONE_BYTE`: the head's byte is not a whole item."""


def _one_byte_item(initial: int) -> Any:
    if initial < 24:
        return initial  # unsigned 0..23
    if 32 <= initial < 56:
        return 31 - initial  # negative -1..-24
    return {0xF4: False, 0xF5: True, 0xF6: None}.get(initial, _MORE)


_ONE_BYTE = tuple(_one_byte_item(initial) for initial in range(256))
"""Each head byte's item when that byte is the whole item (what :func:`_item` would return), else
:data:`_MORE`. Arrays and maps read their small integers (map keys, COSE labels) through it without a
call of :func:`_item` each; everything else goes through :func:`_item`."""


def loads(data: bytes, *, max_depth: int = MAX_DEPTH) -> Any:
    """Decode exactly one strict CBOR item filling ``data``."""
    try:
        value, end = _item(data, 0, 0, max_depth)
    except IndexError:
        raise CborError("the CBOR ends in the middle of an item") from None
    if end != len(data):
        raise CborError(f"{len(data) - end} bytes trail the CBOR item")
    return value


def _item(data: bytes, pos: int, depth: int, max_depth: int) -> tuple[Any, int]:
    initial = data[pos]  # IndexError: truncated, reported by loads
    pos += 1
    major, arg = initial >> 5, initial & 0x1F
    if arg >= 24:
        if arg > 27:
            if arg == 31:
                raise CborError("an indefinite length (or a break outside one)")
            raise CborError(f"reserved additional information {arg}")
        if major == 7:
            if arg != 24:
                raise CborError("a float")
            arg = data[pos]
            if arg < 32:
                raise CborError("a two-byte simple value below 32 (not well-formed)")
            return Simple(arg), pos + 1
        size = _ARG_SIZES[arg]
        end = pos + size
        if end > len(data):
            raise CborError("the CBOR ends in the middle of a head")
        arg = data[pos] if size == 1 else int.from_bytes(data[pos:end], "big")
        pos = end
    if major == 0:
        return arg, pos
    if major == 1:
        return -1 - arg, pos
    if major == 2 or major == 3:
        end = pos + arg
        if end > len(data):
            raise CborError("a string longer than the bytes left")
        if major == 2:
            return data[pos:end], end
        try:
            return data[pos:end].decode("utf-8"), end
        except UnicodeDecodeError:
            raise CborError("text that is not valid UTF-8") from None
    if major == 7:
        if arg == 20:
            return False, pos
        if arg == 21:
            return True, pos
        if arg == 22:
            return None, pos
        return Simple(arg), pos
    depth += 1
    if depth > max_depth:
        raise CborError(f"nesting deeper than {max_depth}")
    if major == 4:
        if arg > len(data) - pos:  # each item takes a byte at least: refuse before allocating
            raise CborError("an array longer than the bytes left")
        items: list[Any] = []
        append = items.append
        for _ in range(arg):
            value = _ONE_BYTE[data[pos]]
            if value is _MORE:
                value, pos = _item(data, pos, depth, max_depth)
            else:
                pos += 1
            append(value)
        return items, pos
    if major == 5:
        if 2 * arg > len(data) - pos:
            raise CborError("a map longer than the bytes left")
        result: dict[Any, Any] = {}
        for _ in range(arg):
            key = _ONE_BYTE[data[pos]]
            if key is _MORE:
                key, pos = _item(data, pos, depth, max_depth)
            else:
                pos += 1
            if type(key) not in _PLAIN_KEYS:
                key = _frozen(key)
            if key in result:
                raise CborError(f"a duplicate map key {key!r}")
            value = _ONE_BYTE[data[pos]]
            if value is _MORE:
                value, pos = _item(data, pos, depth, max_depth)
            else:
                pos += 1
            result[key] = value
        return result, pos
    # major == 6
    if arg != ALLOWED_TAG:
        raise CborError(f"tag {arg} (only tag {ALLOWED_TAG} is allowed)")
    value, pos = _item(data, pos, depth, max_depth)
    return Tag(arg, value), pos


_PLAIN_KEYS = frozenset({int, str, bytes})


def _frozen(value: Any) -> Any:
    """A hashable stand-in for a map key that equals only the same CBOR value."""
    if value is False:
        return _FALSE
    if value is True:
        return _TRUE
    if value is None:
        return _NULL
    if type(value) is list:
        return tuple(_frozen(item) for item in value)
    if type(value) is dict:
        return frozenset((key, _frozen(item)) for key, item in value.items())
    if type(value) is Tag:
        return Tag(value.tag, _frozen(value.value))
    return value  # int, str, bytes, Simple: hashable, and distinct across types


def _head(major: int, arg: int) -> bytes:
    if arg < 24:
        return bytes((major << 5 | arg,))
    if arg < 0x100:
        return bytes((major << 5 | 24, arg))
    if arg < 0x10000:
        return bytes((major << 5 | 25,)) + arg.to_bytes(2, "big")
    if arg < 0x100000000:
        return bytes((major << 5 | 26,)) + arg.to_bytes(4, "big")
    if arg < 0x10000000000000000:
        return bytes((major << 5 | 27,)) + arg.to_bytes(8, "big")
    raise ValueError("an integer beyond CBOR's 64-bit heads")


def dumps(value: Any) -> bytes:
    """Encode in RFC 8949 4.2.1 core deterministic encoding."""
    if value is False:
        return b"\xf4"
    if value is True:
        return b"\xf5"
    if value is None:
        return b"\xf6"
    kind = type(value)
    if kind is int:
        return _head(0, value) if value >= 0 else _head(1, -1 - value)
    if kind is bytes:
        data: bytes = value
        return _head(2, len(data)) + data
    if kind is str:
        encoded: bytes = value.encode("utf-8")
        return _head(3, len(encoded)) + encoded
    if kind is list or kind is tuple:
        return _head(4, len(value)) + b"".join(dumps(item) for item in value)
    if kind is dict:
        items = sorted((dumps(key), dumps(item)) for key, item in value.items())
        return _head(5, len(items)) + b"".join(key + item for key, item in items)
    if kind is Tag:
        return _head(6, value.tag) + dumps(value.value)
    if kind is Simple:
        return bytes((0xE0 | value.value,)) if value.value < 24 else bytes((0xF8, value.value))
    raise TypeError(f"cannot encode {kind.__name__} as CBOR")
