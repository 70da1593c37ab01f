"""``./dev run`` prepares keys, schema, the demo resident and scanner, and can be repeated."""

from __future__ import annotations

import http.client
import os
import stat
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from helpers import console_form
from servers import STARTUP_SECONDS, free_port, service_env, wait_healthy

from codeservice import create_app, db, scanners
from codeservice.demo import (
    DEMO_DEVICE,
    DEMO_OPERATOR,
    DEMO_RESIDENT,
    DEMO_SCANNER_FILE,
    DEMO_USAGE_RECORDS,
    DEMO_VENUE,
    prepare,
)


@pytest.fixture
def demo_config(tmp_path):
    return {
        "ENV": "development",
        "KEYS_DIR": str(tmp_path / "keys"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.db'}",
    }


def test_the_demo_prepares_everything_and_is_safe_to_repeat(demo_config):
    first, scanner_key = prepare(create_app(demo_config))
    again, same_key = prepare(create_app(demo_config))
    assert "created the demo resident" in first and "created the demo scanner" in first
    assert "created the demo resident" not in again and "created the demo scanner" not in again
    assert same_key == scanner_key

    client = create_app(demo_config).test_client()
    login = client.post(
        "/api/v1/session", json={"phone": DEMO_RESIDENT["phone"], "password": DEMO_RESIDENT["password"]}
    )
    assert login.status_code == 200
    assert login.get_json()["resident"] == {"name_masked": "张*明", "category": "senior", "id_type": "resident_id"}
    code = client.get("/api/v1/code")
    assert code.status_code == 200

    # The printed scanner key verifies the demo resident's code, at the demo venue, in every scene.
    for scene in ("venue", "clinic", "transit"):
        answer = client.post(
            "/api/v1/verify",
            json={"token": code.get_json()["token"], "scene": scene},
            headers={"Authorization": f"Bearer {scanner_key}"},
        )
        assert answer.status_code == 200, answer.get_json()
    history = client.get("/api/v1/me/usage").get_json()["records"]
    assert {(item["venue_id"], item["device_id"]) for item in history} == {(DEMO_VENUE, DEMO_DEVICE)}


def test_the_demo_operator_sees_a_day_of_usage_in_the_console(demo_config):
    first, _ = prepare(create_app(demo_config))
    again, _ = prepare(create_app(demo_config))
    assert "created the demo operator" in first and "created the demo operator" not in again
    assert any(f"added {DEMO_USAGE_RECORDS} usage records" in line for line in first)
    assert not any("usage records" in line for line in again)  # once a day is there, no more
    client = create_app(demo_config).test_client()
    response = console_form(client, "/console/login", dict(DEMO_OPERATOR))
    assert response.status_code == 303 and response.headers["Location"].endswith("/console")  # no change asked
    page = client.get("/console").get_data(as_text=True)
    assert 'id="chart-scans-by-hour"' in page and '<dd id="total-scans">0</dd>' not in page


def test_the_demo_scanner_key_is_kept_private_and_replaced_once_revoked(demo_config):
    _, scanner_key = prepare(create_app(demo_config))
    key_file = os.path.join(demo_config["KEYS_DIR"], DEMO_SCANNER_FILE)
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    app = create_app(demo_config)
    with app.app_context():
        (scanner,) = scanners.list_scanners(db.session())
        assert scanner.key_hash == scanners.hash_key(scanner_key)  # the database holds the hash only
        scanners.revoke_scanner(db.session(), scanner.id, now=datetime.now(UTC))

    lines, new_key = prepare(create_app(demo_config))
    assert "created the demo scanner" in lines
    assert new_key != scanner_key
    with open(key_file) as file:
        assert file.read().strip() == new_key


def test_dev_run_prints_the_resident_and_the_scanner_key(tmp_path, demo_config):
    """``python -m codeservice.demo``, what ``./dev run`` starts: what it prints, and that it serves."""
    port = free_port()
    env = service_env(demo_config["DATABASE_URL"], Path(demo_config["KEYS_DIR"]))
    server = subprocess.Popen(
        [sys.executable, "-m", "codeservice.demo", "--port", str(port)],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    assert server.stdout is not None
    try:
        output = ""
        while "operator console" not in output:
            line = server.stdout.readline()
            assert line, f"the demo stopped after printing:\n{output}"
            output += line
        assert f"phone {DEMO_RESIDENT['phone']}, password {DEMO_RESIDENT['password']}" in output
        assert f"/console/login as {DEMO_OPERATOR['username']}, password {DEMO_OPERATOR['password']}" in output
        scanner_key = (Path(demo_config["KEYS_DIR"]) / DEMO_SCANNER_FILE).read_text().strip()
        assert f"\n  {scanner_key}\n" in output
        assert f"Bearer {scanner_key}" in output and f"http://127.0.0.1:{port}/api/v1/verify" in output
        wait_healthy(port, server, time.monotonic() + STARTUP_SECONDS, "the demo server")
    finally:
        server.terminate()
        server.wait(timeout=10)
        server.stdout.close()


def test_dev_run_prints_no_client_address_or_query(tmp_path, demo_config):
    """Like gunicorn's access log, the development server's output holds no client address or query string."""
    port = free_port()
    env = service_env(demo_config["DATABASE_URL"], Path(demo_config["KEYS_DIR"]))
    output_file = tmp_path / "output.txt"
    with open(output_file, "w") as output:
        server = subprocess.Popen(
            [sys.executable, "-m", "codeservice.demo", "--port", str(port)],
            env=env, cwd=tmp_path, stdout=output, stderr=subprocess.STDOUT, text=True,
        )
    try:
        wait_healthy(port, server, time.monotonic() + STARTUP_SECONDS, "the demo server", output_file.read_text)
        for path in ("/healthz?phone=13900139000", "/login?next=%2Fsecret-query", "/nope?token=secret-query"):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            connection.request("GET", path)
            connection.getresponse().read()
            connection.close()
    finally:
        server.terminate()
        server.wait(timeout=10)
    printed = output_file.read_text()
    assert "API description" in printed  # what it prints on start is still there
    assert "13900139000" not in printed and "secret-query" not in printed
    assert "127.0.0.1" not in printed.replace(f"http://127.0.0.1:{port}", "")  # only in the URLs it prints
    assert " HTTP/1.1" not in printed  # no request line
