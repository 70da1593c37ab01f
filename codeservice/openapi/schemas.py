"""The document's building blocks and its ``components/schemas``.

The shapes are declared once, elsewhere, as :class:`verifiers.shapes.Member`
tuples, and their schemas built here from them: a decision and a usage
record (:mod:`verifiers.decision`), a registration (:mod:`codeservice.identity`),
a login (:mod:`codeservice.residents`), a verification
(:mod:`codeservice.scanning`), an upload (:mod:`codeservice.usage`), a
device's enrolment (:mod:`codeservice.devices`). What
depends on the installed scenes (their context, codes and usage detail) is
described from the app's :class:`~verifiers.SceneRegistry`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from verifiers.contract import CATEGORIES, TOKEN_TYPE
from verifiers.decision import DECISION, USAGE_RECORD
from verifiers.errors import RULE_REJECTIONS
from verifiers.scenes import DetailField, SceneRegistry
from verifiers.shapes import Member

from ..devices import ENROLMENT
from ..identity import ID_TYPES, REGISTRATION
from ..keystore import ALGORITHMS
from ..residents import LOGIN
from ..scanning import VERIFY_REQUEST
from ..usage import UPLOAD

JSON = "application/json"


def ref(kind: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


def json_content(schema: dict[str, Any], media_type: str = JSON) -> dict[str, Any]:
    return {media_type: {"schema": schema}}


def headers(**named: str) -> dict[str, Any]:
    """Response headers: HTTP name -> reference to components/headers."""
    return {name.replace("_", "-"): ref("headers", component) for name, component in named.items()}


def string(description: str, **keywords: Any) -> dict[str, Any]:
    return {"type": "string", "description": description, **keywords}


def closed_object(properties: dict[str, Any], *, optional: Iterable[str] = (), **keywords: Any) -> dict[str, Any]:
    """A closed object; every property required except ``optional``."""
    optional = set(optional)
    return {
        "type": "object",
        "required": [name for name in properties if name not in optional],
        "properties": properties,
        "additionalProperties": False,
        **keywords,
    }


def members_object(
    members: Iterable[Member],
    *,
    described: Mapping[str, str] | None = None,
    extended: Mapping[str, dict[str, Any]] | None = None,
    **keywords: Any,
) -> dict[str, Any]:
    """The closed object of declared ``members``; ``described`` replaces descriptions, ``extended`` adds keywords."""
    described = described or {}
    extended = extended or {}
    properties: dict[str, Any] = {}
    optional = []
    for member in members:
        schema = member.json_schema()
        if member.name in described:
            schema["description"] = described[member.name]
        schema.update(extended.get(member.name, {}))
        properties[member.name] = schema
        if not member.required:
            optional.append(member.name)
    return closed_object(properties, optional=optional, **keywords)


def request_body(members: Iterable[Member], **options: Any) -> dict[str, Any]:
    """A request body's schema: its declared members; members beyond these are ignored."""
    return {**members_object(members, **options), "additionalProperties": True}


def component_schemas(scenes: SceneRegistry) -> dict[str, Any]:
    base64url = "^[A-Za-z0-9_-]+$"
    epoch_seconds = {"type": "integer", "description": "Seconds since the epoch."}
    return {
        "Registration": request_body(REGISTRATION),
        "Login": request_body(LOGIN),
        "Resident": closed_object(
            {
                "name_masked": string("The name with its middle masked, e.g. `张*明`."),
                "category": {
                    "description": "The concession category codes carry now, if any.",
                    "enum": [*CATEGORIES, None],
                },
                "id_type": string("The identity document's kind.", enum=list(ID_TYPES)),
            },
            description="What the API shows of a resident, to that resident: never the ID number or phone.",
        ),
        "Code": closed_object(
            {
                "token": string(
                    f"The code: a compact JWS (`typ` `{TOKEN_TYPE}`); the QR code's text is exactly this.",
                    pattern=r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$",
                ),
                "expires_at": {**epoch_seconds, "description": "The code's `exp`, seconds since the epoch."},
                "refresh_after": {
                    **epoch_seconds,
                    "description": "When to fetch the next code, before `expires_at`; seconds since the epoch.",
                },
                "qr_svg": string(
                    "The QR code as an SVG element to inline (a `viewBox`, no width or height).",
                    contentMediaType="image/svg+xml",
                ),
            }
        ),
        "VerifyRequest": request_body(VERIFY_REQUEST, described={"context": _context_description(scenes)}),
        "UsageRecord": members_object(
            USAGE_RECORD,
            described={"detail": _detail_description(scenes)},
            description="A usage record (contract section 5).",
        ),
        "UsageBatch": request_body(UPLOAD, extended={"records": {"items": ref("schemas", "UsageRecord")}}),
        "DeviceEnrolment": request_body(ENROLMENT),
        "DeviceCredential": closed_object(
            {
                "device_id": string("The device's id, for refreshing its credential and withdrawing it."),
                "credential": string(
                    "The credential (contract section 9): its COSE_Sign1 bytes in unpadded base64url, "
                    "which the phone's device codes carry.",
                    pattern=base64url,
                ),
                "expires_at": {**epoch_seconds, "description": "The credential's `exp`, seconds since the epoch."},
                "server_time": {
                    **epoch_seconds,
                    "description": "The service's clock (the credential's `iat`): device codes' `t` is on it.",
                },
            }
        ),
        "Devices": closed_object(
            {
                "devices": {
                    "type": "array",
                    "items": closed_object(
                        {
                            "device_id": string("The device's id."),
                            "created_at": {**epoch_seconds, "description": "When it was enrolled."},
                            "active": {"type": "boolean", "description": "False once withdrawn."},
                        }
                    ),
                }
            }
        ),
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": closed_object(
                    {
                        "code": string("Stable and machine-readable."),
                        "message": string("For people; never repeats the rejected value."),
                        "field": string("The request field at fault, when the error is about one."),
                    },
                    optional=("field",),
                )
            },
            "additionalProperties": False,
        },
        "JWKS": closed_object(
            {"keys": {"type": "array", "items": ref("schemas", "JWK")}},
            description="A JWK Set (RFC 7517 section 5).",
        ),
        "JWK": closed_object(
            {
                "kty": string("`OKP` (Ed25519) or `EC` (P-256).", enum=["OKP", "EC"]),
                "crv": string("The curve.", enum=["Ed25519", "P-256"]),
                "x": string("The public key (OKP) or its x coordinate (EC), base64url.", pattern=base64url),
                "y": string("The y coordinate (EC only), base64url.", pattern=base64url),
                "kid": string(
                    "The first 8 bytes of the RFC 7638 thumbprint, base64url.", pattern="^[A-Za-z0-9_-]{11}$"
                ),
                "alg": string("The signing algorithm.", enum=list(ALGORITHMS)),
                "use": {"const": "sig"},
            },
            optional=("y",),
        ),
        "Decision": members_object(
            DECISION,
            described={"code": _decision_code_description(scenes)},
            description="A verification decision (contract section 2).",
        ),
    }


def _detail_description(scenes: SceneRegistry) -> str:
    """The members each installed scene declares for its usage detail (``Scene.usage_fields``)."""
    declared = "".join(
        f"\n- `{name}`: " + (", ".join(_field_text(field) for field in scenes.usage_fields(name)) or "none")
        for name in scenes.names()
    )
    return (
        "The scene's usage detail: only the members its scene declares, each absent or as declared "
        f"(contract section 3); by installed scene:\n{declared}\n\nA null scene, or one that declares "
        "none, has `{}`. An uploaded `venue_id` is the uploading scanner's venue. A resident's history "
        "holds only declared members."
    )


def _field_text(field: DetailField) -> str:
    if field.choices is not None:
        kind = " or ".join(f"`{choice}`" for choice in field.choices)
    elif field.kind == "integer":
        kind = f"an integer{field.bounds()}"
    else:
        kind = f"text of at most {field.max_length} characters"
    return f"`{field.name}` ({kind}{', or null' if field.nullable else ''})"


def _context_description(scenes: SceneRegistry) -> str:
    """What each installed scene wants in the context, in the scenes' own words (``Scene.context_help``)."""
    wanted = "".join(
        f"\n- `{name}`: {help_text or 'see the scene'}" for name, help_text in scenes.context_help().items()
    )
    return (
        f"What the scene needs, by installed scene:\n{wanted}\n\nA context that lacks what its scene needs, "
        "or holds the wrong types, is a `bad_context` decision, not an error."
    )


def _decision_code_description(scenes: SceneRegistry) -> str:
    """A decision's codes: the verifier's rules' and the installed scenes'."""
    rules = [rejection.code for rejection in RULE_REJECTIONS]
    by_scene = {name: scenes.rejection_codes(name) for name in scenes.names()}
    scene_codes = "; ".join(f"{name}: {', '.join(codes) or 'none'}" for name, codes in by_scene.items())
    return (
        f"`accepted`, or the first rule that failed: {', '.join(rules)}; "
        f"or a scene's own (installed scenes: {scene_codes})."
    )
