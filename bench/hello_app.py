"""The scan benchmark's floor: a bare Flask app whose ``/hello`` returns a small JSON.

Served by gunicorn exactly like the service (``bench/scan.py`` starts it), so
the ratio verify/hello is what verification itself costs over the
framework and the server. ``/hello-jwt`` is the same plus one PyJWT decode
of an EdDSA token (signature checked): the reference point for what the
signature check alone costs on this machine.
"""

from __future__ import annotations

import time

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import Flask, jsonify

app = Flask(__name__)

_KEY = Ed25519PrivateKey.generate()
_PUBLIC_KEY = _KEY.public_key()
_TOKEN = jwt.encode({"sub": "hello", "exp": int(time.time()) + 86_400}, _KEY, algorithm="EdDSA")


@app.get("/hello")
def hello() -> object:
    return jsonify(hello="world")


@app.get("/hello-jwt")
def hello_jwt() -> object:
    claims = jwt.decode(_TOKEN, _PUBLIC_KEY, algorithms=["EdDSA"])
    return jsonify(hello=claims["sub"])
