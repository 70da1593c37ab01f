"""The scan benchmark's floor: a bare Flask app whose ``/hello`` returns a small JSON.

Served by gunicorn exactly like the service (``bench/scan.py`` starts it), so
the ratio verify/hello is what verification itself costs over the
framework and the server.
"""

from __future__ import annotations

from flask import Flask, jsonify

app = Flask(__name__)


@app.get("/hello")
def hello() -> object:
    return jsonify(hello="world")
