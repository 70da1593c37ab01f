"""A resident's phones for device codes (contract sections 4 and 9): enrol, refresh, list, withdraw."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, current_app, jsonify, request

from verifiers.jose import b64url_encode

from .. import auth, db, devices
from ..context import key_store
from ..http import json_body
from ..openapi.operations import SESSION_SCHEME, described_by, operation
from ..openapi.schemas import headers, json_content, ref
from .blueprint import api

NO_STORE = "no-store"
DEVICE_ID_PARAMETER = {
    "name": "device_id",
    "in": "path",
    "required": True,
    "description": "The device id `POST /api/v1/devices` gave.",
    "schema": {"type": "string"},
}


def _credential_answer(issued: devices.IssuedCredential, status: int) -> Response:
    response = jsonify(
        device_id=issued.device_id,
        credential=b64url_encode(issued.credential),
        expires_at=issued.expires_at,
        server_time=issued.issued_at,
    )
    response.status_code = status
    response.headers["Cache-Control"] = NO_STORE
    return response


def _credential_response(app: Flask, what: str) -> dict[str, Any]:
    ttl = app.config["DEVICE_CREDENTIAL_TTL"]
    return {
        "description": f"{what} The credential is valid for {ttl} s; fetch a fresh one past half its life.",
        "headers": headers(Cache_Control="CacheControlNoStore"),
        "content": json_content(ref("schemas", "DeviceCredential")),
    }


def _enrol_operation(app: Flask) -> dict[str, Any]:
    limit = app.config["DEVICES_PER_RESIDENT"]
    return operation(
        "enrolDevice",
        "Enrol this phone's public key for device codes",
        "devices",
        {"201": _credential_response(app, "Enrolled, with the device's first credential.")},
        errors=("InvalidPublicKey", "NotAuthenticated", "CodeRevoked", "RateLimited"),
        auth=SESSION_SCHEME,
        request_schema="DeviceEnrolment",
        database=True,
        description=(
            f"A resident has at most {limit} active device(s): enrolling one more withdraws the oldest, "
            "whose credentials join the revocation list."
        ),
    )


@api.post("/devices")
@described_by(_enrol_operation)
def enrol_device() -> Response:
    resident = auth.current_resident()  # 401 before anything about the body
    body = json_body(devices.ENROLMENT)
    config = current_app.config
    issued = devices.enrol(
        db.session(),
        key_store().signer(),
        resident,
        body["public_key"],
        now=datetime.now(UTC),
        terms=devices.CredentialTerms.from_config(config),
        limit=config["DEVICES_PER_RESIDENT"],
    )
    return _credential_answer(issued, 201)


def _refresh_operation(app: Flask) -> dict[str, Any]:
    return operation(
        "refreshDeviceCredential",
        "A fresh credential for an enrolled device",
        "devices",
        {"200": _credential_response(app, "A new credential for the device (the earlier ones stay valid).")},
        errors=(
            "BadJsonBody",
            "BodyTooLarge",
            "UnsupportedMediaType",
            "NotAuthenticated",
            "CodeRevoked",
            "DeviceNotFound",
            "RateLimited",
        ),
        auth=SESSION_SCHEME,
        database=True,
        parameters=[DEVICE_ID_PARAMETER],
        description=(
            "No body is needed: send none, or a JSON object (`{}`), which is not read; "
            "any other body is refused as `POST /api/v1/devices` refuses one."
        ),
    )


@api.post("/devices/<device_id>/credential")
@described_by(_refresh_operation)
def refresh_device_credential(device_id: str) -> Response:
    resident = auth.current_resident()
    if request.get_data(cache=True):
        json_body(())  # a body, if any, is a JSON object; nothing in it is read
    issued = devices.refresh(
        db.session(),
        key_store().signer(),
        resident,
        device_id,
        now=datetime.now(UTC),
        terms=devices.CredentialTerms.from_config(current_app.config),
    )
    return _credential_answer(issued, 200)


def _my_devices_operation(_app: Flask) -> dict[str, Any]:
    return operation(
        "getMyDevices",
        "The logged-in resident's enrolled devices",
        "devices",
        {
            "200": {
                "description": "Every device the resident enrolled, oldest first, active or withdrawn.",
                "headers": headers(Cache_Control="CacheControlNoStore"),
                "content": json_content(ref("schemas", "Devices")),
            }
        },
        errors=("NotAuthenticated", "RateLimited"),
        auth=SESSION_SCHEME,
        database=True,
    )


@api.get("/me/devices")
@described_by(_my_devices_operation)
def my_devices() -> Response:
    listed = [
        {
            "device_id": device.id,
            "created_at": devices.epoch_seconds(device.created_at),
            "active": device.withdrawn_at is None,
        }
        for device in devices.devices_of(db.session(), auth.current_resident())
    ]
    response = jsonify(devices=listed)
    response.headers["Cache-Control"] = NO_STORE
    return response


def _withdraw_operation(_app: Flask) -> dict[str, Any]:
    return operation(
        "withdrawDevice",
        "Withdraw one of the resident's devices",
        "devices",
        {
            "204": {
                "description": (
                    "Withdrawn: the device gets no more credentials, and those it holds join the revocation "
                    "list until a day after they expire."
                )
            }
        },
        errors=("NotAuthenticated", "DeviceNotFound", "RateLimited"),
        auth=SESSION_SCHEME,
        database=True,
        parameters=[DEVICE_ID_PARAMETER],
    )


@api.delete("/me/devices/<device_id>")
@described_by(_withdraw_operation)
def withdraw_device(device_id: str) -> Response:
    devices.withdraw(db.session(), auth.current_resident(), device_id, now=datetime.now(UTC))
    response = Response(status=204)
    del response.headers["Content-Type"]  # no content, so nothing to describe (RFC 9110 section 15.3.5)
    return response
