"""Rules 1-5 of contract section 9: device codes (``RSD1:``) and paper codes (``RSP1:``).

Pure: the scanned text, a key set, the rules and ``now`` in; a
:class:`~verifiers.tokens.VerifiedCode` with ``form`` ``device`` or ``paper``
out, or the first failing rule's :class:`~verifiers.errors.Rejection`.
Rules 6-9 (scene, attendant, revocation by ``sub`` or ``cti``, replay by
``(cti, t)``, the scene's own) need the verifier's state and are shared with
the JWS form.

Once the issuer's signature holds (rule 3), every rejection carries in
``rejection.verified`` what a decision may name: ``form``, ``sub``, ``jti``
and ``exp`` (each None when the claim is not of its type). Before that
nothing in the code is trusted.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, TypeGuard

from . import cbor
from .base45 import Base45Error, b45decode, b45encode
from .contract import (
    CATEGORIES,
    DEVICE_CODE_PREFIX,
    DEVICE_CODE_VALIDITY_SECONDS,
    MAX_DEVICE_CREDENTIAL_LIFETIME_SECONDS,
    MAX_PAPER_CREDENTIAL_LIFETIME_SECONDS,
    MAX_TOKEN_BYTES,
    PAPER_CODE_PREFIX,
)
from .cose import (
    ALG_ES256,
    HEADER_ALG,
    HEADER_KID,
    JOSE_ALG,
    CoseFormatError,
    Sign1,
    p256_key_from_cose,
    sign1,
    sign1_from_item,
    verify_es256,
)
from .errors import (
    AlgNotAllowed,
    BadSignature,
    Expired,
    Malformed,
    NotYetValid,
    Rejection,
    UnknownKey,
    WrongType,
)
from .jose import b64url_encode
from .keys import KeySet, VerificationKey
from .tokens import VerificationRules, VerifiedCode, check_times

DEVICE, PAPER, ONLINE = "device", "paper", "online"
FORMS = {DEVICE_CODE_PREFIX: DEVICE, PAPER_CODE_PREFIX: PAPER}
PREFIX_LENGTH = 5

# CWT claim labels (RFC 8392) and section 9's own.
CLAIM_ISS, CLAIM_SUB, CLAIM_EXP, CLAIM_IAT, CLAIM_CTI, CLAIM_CNF = 1, 2, 4, 6, 7, 8
CNF_COSE_KEY = 1
CTI_BYTES = 8
# The device code's payload: the credential as issued, and t.
PAYLOAD_CREDENTIAL, PAYLOAD_T = 1, 2
MAX_LIFETIME = {DEVICE: MAX_DEVICE_CREDENTIAL_LIFETIME_SECONDS, PAPER: MAX_PAPER_CREDENTIAL_LIFETIME_SECONDS}

_CREDENTIAL_HEADER = frozenset({HEADER_ALG, HEADER_KID})
_PRESENTATION_HEADER = frozenset({HEADER_ALG})
_PAYLOAD_KEYS = frozenset({PAYLOAD_CREDENTIAL, PAYLOAD_T})
_HINT_MEMBERS = frozenset({"n", "b", "i"})


def code_form(token: object) -> str:
    """The form the text names by its prefix alone: ``device``, ``paper`` or ``online`` (a JWS)."""
    if type(token) is str:
        return FORMS.get(token[:PREFIX_LENGTH], ONLINE)
    return ONLINE


@dataclass(frozen=True, slots=True)
class CodeIdentity:
    """What a decision names of a code whose issuer signature held but a later rule refused."""

    form: str
    sub: str | None
    jti: str | None
    exp: int | None


@dataclass(slots=True)
class _Parsed:
    form: str
    credential: Sign1
    claims: dict[Any, Any]
    presentation: Sign1 | None
    t: int | None


def _uint(value: object) -> TypeGuard[int]:
    return type(value) is int and value >= 0  # bool is not int here; CBOR negatives are


def _storable_text(value: object) -> TypeGuard[str]:
    # sub is stored in usage records: non-empty, and no NUL (PostgreSQL refuses it in text)
    return type(value) is str and value != "" and "\x00" not in value


def _loads(data: bytes) -> Any:
    try:
        return cbor.loads(data)
    except cbor.CborError as exc:
        raise Malformed(f"the code's CBOR is not strict: {exc}") from None


def _sign1(item: Any, what: str, header: frozenset[int]) -> Sign1:
    try:
        parsed = sign1_from_item(item)
    except CoseFormatError as exc:
        raise Malformed(f"the {what} is not a COSE_Sign1 of section 9: {exc}") from None
    protected = parsed.protected
    if protected.keys() != header:
        raise Malformed(f"the {what}'s protected header must hold exactly {sorted(header)}")
    if type(protected[HEADER_ALG]) is not int:
        raise Malformed(f"the {what}'s alg is not an integer")
    if HEADER_KID in header and type(protected[HEADER_KID]) is not bytes:
        raise Malformed(f"the {what}'s kid is not a byte string")
    return parsed


@dataclass(slots=True)
class _Trusted:
    """A device credential whose rules 1 to 4 (first part) held: what its bytes always give again."""

    key: VerificationKey
    """The issuer key whose signature held: the very object, so a key set replaced since is a miss."""
    credential: Sign1
    claims: dict[Any, Any]
    code: VerifiedCode
    """Its claims read; ``jti`` and ``t`` are each presentation's own."""
    device_key: Any


DEFAULT_CREDENTIAL_CACHE_SIZE = 4096


class CredentialCache:
    """Device credentials already checked, by their exact bytes: bounded, the least recently used out.

    A gate sees one resident's credential all day (a new presentation every
    30 s, the same credential inside): on a hit the credential's CBOR is
    not decoded again, its issuer signature (rule 3) not verified again and
    its ``cnf`` point not decompressed again, since the same bytes under
    the same key always give the same answer. Everything that can change
    is checked at every scan: the key set and the allowed algorithms (rule
    2: a hit counts only when the credential's ``kid`` still names the very
    key object that verified it), the times (rule 4, second part), the
    presentation (rule 5), and, in the verifier, revocation and replay.
    Only credentials that passed rules 1-4 (first part) are kept.
    """

    def __init__(self, size: int = DEFAULT_CREDENTIAL_CACHE_SIZE) -> None:
        self.size = size
        self._entries: OrderedDict[bytes, _Trusted] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, credential: bytes) -> _Trusted | None:
        with self._lock:
            trusted = self._entries.get(credential)
            if trusted is not None:
                self._entries.move_to_end(credential)
            return trusted

    def put(self, credential: bytes, trusted: _Trusted) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._entries[credential] = trusted
            if len(self._entries) > self.size:
                self._entries.popitem(last=False)


def parse_offline_code(text: object) -> _Parsed:
    """Rule 1: size, prefix, strict Base45, strict CBOR at every level, the COSE shapes."""
    form, presentation, t, data = _parse_outside(text)
    credential, claims = _parse_credential(data)
    return _Parsed(form, credential, claims, presentation, t)


def _parse_outside(text: object) -> tuple[str, Sign1 | None, int | None, bytes]:
    """Rule 1 up to the credential: ``(form, presentation, t, the credential's bytes)``."""
    if type(text) is not str:
        raise Malformed("the code is not text")
    if len(text) > MAX_TOKEN_BYTES:  # before any decoding
        raise Malformed(f"the code is longer than {MAX_TOKEN_BYTES} characters")
    form = FORMS.get(text[:PREFIX_LENGTH])
    if form is None:
        raise Malformed("the code does not start with RSD1: or RSP1:")
    try:
        data = b45decode(text[PREFIX_LENGTH:])
    except Base45Error as exc:
        raise Malformed(f"the code is not strict Base45: {exc}") from None
    presentation = t = None
    if form == DEVICE:
        presentation = _sign1(_loads(data), "device code", _PRESENTATION_HEADER)
        payload = _loads(presentation.payload)
        if type(payload) is not dict or payload.keys() != _PAYLOAD_KEYS:
            raise Malformed("the device code's payload is not exactly {1: credential, 2: t}")
        data, t = payload[PAYLOAD_CREDENTIAL], payload[PAYLOAD_T]
        if type(data) is not bytes or not _uint(t):
            raise Malformed("the device code's credential is not a byte string or its t not an unsigned integer")
    return form, presentation, t, data


def _parse_credential(data: bytes) -> tuple[Sign1, dict[Any, Any]]:
    """Rule 1, the credential: a COSE_Sign1 of section 9 whose payload is a map of claims."""
    credential = _sign1(_loads(data), "credential", _CREDENTIAL_HEADER)
    claims = _loads(credential.payload)
    if type(claims) is not dict:
        raise Malformed("the credential's payload is not a map of claims")
    return credential, claims


def check_offline_code(
    text: object,
    keys: KeySet,
    rules: VerificationRules,
    now: float,
    credentials: CredentialCache | None = None,
) -> VerifiedCode:
    """Rules 1-5 of contract section 9, in order; the first failure is raised.

    ``credentials``: device credentials already checked (see
    :class:`CredentialCache`); the answer is the same with or without it.
    """
    form, presentation, t, data = _parse_outside(text)
    trusted = credentials.get(data) if credentials is not None and form == DEVICE else None
    if trusted is None:
        parsed = _Parsed(form, *_parse_credential(data), presentation, t)
    else:
        parsed = _Parsed(form, trusted.credential, trusted.claims, presentation, t)
    credential = parsed.credential
    # Rule 2: the credential's algorithm, then its key.
    alg = JOSE_ALG.get(credential.protected[HEADER_ALG])
    if alg is None or alg not in rules.algorithms:
        raise AlgNotAllowed(f"COSE algorithm {credential.protected[HEADER_ALG]} is not allowed")
    key = keys.get(b64url_encode(credential.protected[HEADER_KID]))
    if key is None:
        raise UnknownKey()
    if key.alg != alg:
        raise AlgNotAllowed(f"key {key.kid} is a {key.alg} key, not {alg}")
    # Rule 3: the issuer's signature (held already for these bytes under this very key object: a hit).
    if trusted is not None and trusted.key is not key:
        trusted = None
    if trusted is None and not key.verify(credential.signature, credential.to_be_signed()):
        raise BadSignature()
    try:
        if trusted is None:
            code, device_key = _read_claims(parsed, key.kid)
            if credentials is not None and form == DEVICE:
                credentials.put(data, _Trusted(key, credential, parsed.claims, code, device_key))
        else:
            code = replace(trusted.code, jti=f"{trusted.code.cti}-{t}", t=t)
            device_key = trusted.device_key
        check_times(
            code,
            rules,
            now,
            expired="the credential has expired",
            not_yet_valid="the credential is not valid yet; check the scanner's clock",
        )
        if parsed.presentation is not None:
            _check_presentation(parsed.presentation, device_key, code, rules, now)
    except Rejection as rejection:
        rejection.verified = _identity(parsed)
        raise
    return code


def _identity(parsed: _Parsed) -> CodeIdentity:
    claims = parsed.claims
    sub, cti, exp = claims.get(CLAIM_SUB), claims.get(CLAIM_CTI), claims.get(CLAIM_EXP)
    jti = None
    if type(cti) is bytes and len(cti) == CTI_BYTES:
        jti = b64url_encode(cti) if parsed.t is None else f"{b64url_encode(cti)}-{parsed.t}"
    return CodeIdentity(
        form=parsed.form,
        sub=sub if _storable_text(sub) else None,
        jti=jti,
        exp=exp if _uint(exp) else None,
    )


def _read_claims(parsed: _Parsed, kid: str) -> tuple[VerifiedCode, Any]:
    """Rule 4, first part: use, then every other claim's type, cnf or hint, the lifetime."""
    claims, form = parsed.claims, parsed.form
    use = claims.get("use")
    if type(use) is not str:
        raise Malformed("the credential's use is missing or not text")
    if use != form:
        raise WrongType(f"a {use} credential in a {form} code")
    iss, sub, exp, iat = claims.get(CLAIM_ISS), claims.get(CLAIM_SUB), claims.get(CLAIM_EXP), claims.get(CLAIM_IAT)
    cti, scopes = claims.get(CLAIM_CTI), claims.get("scp")
    if not (
        type(iss) is str  # any other issuer, "" too, is issuer_mismatch
        and _storable_text(sub)
        and _uint(exp)
        and _uint(iat)
        and type(cti) is bytes
        and len(cti) == CTI_BYTES
        and type(scopes) is list
        and all(type(scope) is str for scope in scopes)
    ):
        raise Malformed("a required claim is missing or of the wrong type")
    category = claims.get("cat")
    if "cat" in claims and (type(category) is not str or category not in CATEGORIES):  # null too
        raise Malformed("the category claim is not one of senior, student, disabled, child")
    device_key = check_id = None
    if form == DEVICE:
        if "hint" in claims:
            raise Malformed("a device credential carries no holder hint")
        device_key = _device_key(claims.get(CLAIM_CNF))
    else:
        if CLAIM_CNF in claims:
            raise Malformed("a paper credential names no device key (cnf)")
        check_id = _hint(claims.get("hint"))
    if not 1 <= exp - iat <= MAX_LIFETIME[form]:
        raise Malformed(f"the credential's lifetime is outside 1..{MAX_LIFETIME[form]} seconds")
    cti_b64 = b64url_encode(cti)
    code = VerifiedCode(
        iss=iss,
        sub=sub,
        jti=cti_b64 if parsed.t is None else f"{cti_b64}-{parsed.t}",
        iat=iat,
        exp=exp,
        scopes=tuple(scopes),
        category=category,
        kid=kid,
        form=form,
        cti=cti_b64,
        t=parsed.t,
        check_id=check_id,
    )
    return code, device_key


def _device_key(cnf: object) -> Any:
    if type(cnf) is not dict or cnf.keys() != {CNF_COSE_KEY}:
        raise Malformed("a device credential's cnf is not {1: COSE_Key}")
    try:
        return p256_key_from_cose(cnf[CNF_COSE_KEY])
    except ValueError as exc:
        raise Malformed(f"the credential's device key: {exc}") from None


def _hint(hint: object) -> dict[str, str]:
    if (
        type(hint) is not dict
        or not _HINT_MEMBERS.issuperset(hint)
        or not all(type(value) is str and value for value in hint.values())
        or "n" not in hint
        or "i" not in hint
    ):
        raise Malformed('a paper credential\'s hint is not {"n", "b" (optional), "i"} of text')
    birthday = hint.get("b")
    if birthday is not None and not (len(birthday) == 4 and birthday.isascii() and birthday.isdigit()):
        raise Malformed('the hint\'s "b" is not a birth month and day "MMDD"')
    return dict(hint)


def _check_presentation(
    presentation: Sign1, device_key: Any, code: VerifiedCode, rules: VerificationRules, now: float
) -> None:
    """Rule 5: the presentation's algorithm, its signature under the cnf key, then t."""
    if presentation.protected[HEADER_ALG] != ALG_ES256:
        raise AlgNotAllowed("a device code is signed with ES256 (-7) only")
    if not verify_es256(device_key, presentation.signature, presentation.to_be_signed()):
        raise BadSignature("the device code is not signed by the credential's device key")
    t = code.t
    assert t is not None  # a device code's payload holds it (rule 1)
    if now > t + DEVICE_CODE_VALIDITY_SECONDS + rules.leeway or t > code.exp:  # t > exp: no leeway
        raise Expired("the device code has expired; the phone makes a new one every 30 s")
    if t > now + rules.leeway or t < code.iat - rules.leeway:
        raise NotYetValid("the device code is not valid yet; check the phone's or the scanner's clock")


# -- minting: what the service issues and a phone presents -----------------

COSE_ALG = {name: alg for alg, name in JOSE_ALG.items()}
"""JOSE algorithm name (``EdDSA``, ``ES256``) -> COSE identifier (-8, -7)."""


def mint_credential(
    claims: dict[Any, Any], *, alg: str, kid: bytes, sign: Callable[[bytes], bytes]
) -> bytes:
    """A credential as the service issues it: tag 18, protected ``{1: alg, 4: kid}``, the claims deterministic.

    ``sign`` is the issuer key's raw signer (Ed25519, or ES256 r||s) over the
    Sig_structure; ``kid`` is the 8 bytes behind section 1's base64url kid.
    """
    return sign1({HEADER_ALG: COSE_ALG[alg], HEADER_KID: kid}, cbor.dumps(claims), sign)


def device_code(credential: bytes, t: int, sign: Callable[[bytes], bytes]) -> str:
    """``RSD1:`` + Base45 of the presentation ``{1: credential, 2: t}``, signed ES256 (r||s) by the device key."""
    payload = cbor.dumps({PAYLOAD_CREDENTIAL: credential, PAYLOAD_T: t})
    return DEVICE_CODE_PREFIX + b45encode(sign1({HEADER_ALG: ALG_ES256}, payload, sign))


def paper_code(credential: bytes) -> str:
    """``RSP1:`` + Base45 of a paper credential."""
    return PAPER_CODE_PREFIX + b45encode(credential)
