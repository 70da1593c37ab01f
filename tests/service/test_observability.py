"""Observability: request ids, JSON log lines without personal data, /metrics, /readyz."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from helpers import add_scanner, json_routes, new_keys_dir, response_schema, validate
from prometheus_client.parser import text_string_to_metric_families

from codeservice import create_app, db
from codeservice.errors import ConfigError
from codeservice.observability import JsonFormatter, RequestIdFilter, _StderrHandler
from codeservice.openapi import openapi_document

CLOSED_PORT_URL = "postgresql+psycopg://postgres@127.0.0.1:1/x"


# -- helpers -------------------------------------------------------------------------


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """What the ``codeservice`` loggers write during the test, formatted as the service formats it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger("codeservice")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield stream
    logger.removeHandler(handler)
    logger.setLevel(level)


def parsed(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def samples(client: Any, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The samples called ``name`` on ``/metrics``: sorted labels -> value."""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.get_data(as_text=True))
        for sample in family.samples
        if sample.name == name
    }


# -- request ids and log lines -----------------------------------------------------------


def test_a_request_id_is_generated_and_echoed(client: Any) -> None:
    first = client.get("/healthz").headers["X-Request-ID"]
    second = client.get("/api/v1/nope").headers["X-Request-ID"]
    assert first != second
    assert all(0 < len(rid) <= 64 for rid in (first, second))


def test_a_valid_incoming_request_id_is_kept(client: Any) -> None:
    rid = "edge-1.req_42-" + "a" * 50
    assert client.get("/healthz", headers={"X-Request-ID": rid}).headers["X-Request-ID"] == rid


@pytest.mark.parametrize("rid", ["a" * 65, "with space", "semi;colon", "日本", "<script>", ""], ids=repr)
def test_an_invalid_incoming_request_id_is_replaced(client: Any, rid: str) -> None:
    echoed = client.get("/healthz", headers={"X-Request-ID": rid}).headers["X-Request-ID"]
    assert echoed != rid and echoed


def test_one_json_access_line_per_request(client: Any, log_lines: io.StringIO) -> None:
    response = client.get("/healthz?phone=13800138000", headers={"X-Request-ID": "trace-1"})
    (line,) = parsed(log_lines)
    assert line["logger"] == "codeservice.access" and line["level"] == "INFO"
    assert (line["request_id"], line["method"], line["path"], line["status"]) == ("trace-1", "GET", "/healthz", 200)
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    assert line["time"].endswith("+00:00") and line["message"] == "GET /healthz 200"
    assert "13800138000" not in log_lines.getvalue()  # the path only, never the query string
    assert response.headers["X-Request-ID"] == "trace-1"


def test_every_line_of_a_request_carries_its_id(app: Flask, client: Any, log_lines: io.StringIO) -> None:
    @app.get("/_log_twice")
    def log_twice() -> str:
        logging.getLogger("codeservice.something").warning("first")
        logging.getLogger("codeservice").debug("second")
        return "ok"

    rid = client.get("/_log_twice").headers["X-Request-ID"]
    lines = parsed(log_lines)
    assert [line["message"] for line in lines] == ["first", "second", "GET /_log_twice 200"]
    assert {line["request_id"] for line in lines} == {rid}


def test_an_exception_is_logged_by_type_and_stack_only() -> None:
    phone = "13800138000"
    try:
        raise ValueError(f"phone {phone}")  # the source line is in the stack, the value is not
    except ValueError:
        record = logging.LogRecord("codeservice.x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    line = json.loads(JsonFormatter().format(record))
    assert line["exception"] == "ValueError" and "test_observability.py" in line["stack"]
    assert "13800138000" not in json.dumps(line)
    assert "request_id" not in line  # outside a request


def test_nothing_personal_is_logged(app: Flask, client: Any, runner: Any, log_lines: io.StringIO) -> None:
    from helpers import registration

    body = registration(name="欧阳娜娜")
    assert client.post("/api/v1/residents", json=body).status_code == 201
    assert client.post("/api/v1/residents", json=body).status_code == 409
    login = client.post("/api/v1/session", json={"phone": body["phone"], "password": body["password"]})
    assert login.status_code == 200
    token = client.get("/api/v1/code").get_json()["token"]
    _, key = add_scanner(runner, scenes="clinic,venue")
    scanner = {"Authorization": f"Bearer {key}"}
    verify = {"token": token, "scene": "venue"}
    assert client.post("/api/v1/verify", json=verify, headers=scanner).status_code == 200
    assert client.post("/api/v1/verify", json=verify, headers={"Authorization": "Bearer csk_x"}).status_code == 401

    text = log_lines.getvalue()
    lines = parsed(log_lines)
    assert len([line for line in lines if line["logger"] == "codeservice.access"]) == 6
    cookie = client.get_cookie("codeservice_session")
    secrets = [body["phone"], body["name"], body["id_number"], body["password"], key, token, cookie.value]
    for secret in secrets:
        assert secret not in text
    assert "Authorization" not in text and "Bearer" not in text and "Cookie" not in text


def test_logging_is_configured_once(app_config: dict[str, Any]) -> None:
    create_app(app_config)
    create_app({**app_config, "LOG_LEVEL": "warning"})
    logger = logging.getLogger("codeservice")
    assert len([h for h in logger.handlers if isinstance(h, _StderrHandler)]) == 1
    assert logger.level == logging.WARNING
    create_app(app_config)
    assert logger.level == logging.INFO
    with pytest.raises(ConfigError, match="LOG_LEVEL"):
        create_app({**app_config, "LOG_LEVEL": "chatty"})
    logger.setLevel(logging.INFO)


# -- metrics -------------------------------------------------------------------------


def test_metrics_count_requests_by_route(client: Any) -> None:
    client.get("/healthz")
    client.get("/healthz")
    client.get("/api/v1/code")  # 401
    client.get("/api/v1/nope/13800138000")  # 404: not its raw path
    counts = samples(client, "codeservice_http_requests_total")
    assert counts[(("method", "GET"), ("route", "/healthz"), ("status", "200"))] == 2
    assert counts[(("method", "GET"), ("route", "/api/v1/code"), ("status", "401"))] == 1
    assert counts[(("method", "GET"), ("route", "unmatched"), ("status", "404"))] == 1
    assert not any("13800138000" in value for labels in counts for _name, value in labels)
    durations = samples(client, "codeservice_http_request_duration_seconds_count")
    assert durations[(("route", "/healthz"),)] == 2
    assert samples(client, "codeservice_db_query_duration_seconds_count")[()] > 0  # the 401's session lookup


def test_metrics_are_not_a_json_route(app: Flask, client: Any) -> None:
    assert "/metrics" not in {path for path, _method in json_routes(app)}
    assert client.get("/metrics").headers.get("X-Request-ID") is None  # not through Flask: not logged
    assert client.post("/metrics").status_code == 404  # GET and HEAD only; Flask has no such route


METRICS_TOKEN = "scraper-token-0123456789abcdef"


def metrics_client(tmp_path: Path, keys_dir: Path, **config: Any) -> Any:
    """A client of an app on its own SQLite file; /metrics needs no more."""
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'metrics.db'}", "KEYS_DIR": str(keys_dir), **config})
    return app.test_client()


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer ", "Bearer wrong", f"Basic {METRICS_TOKEN}", f"Bearer {METRICS_TOKEN}x",
     f"Bearer {METRICS_TOKEN[:-1]}", "Bearer 令牌"],
    ids=repr,
)
def test_metrics_need_the_token_when_one_is_configured(
    tmp_path: Path, keys_dir: Path, authorization: str | None
) -> None:
    client = metrics_client(tmp_path, keys_dir, METRICS_TOKEN=METRICS_TOKEN)
    headers = {} if authorization is None else {"Authorization": authorization}
    for method in (client.get, client.head):
        response = method("/metrics", headers=headers)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
    response = client.get("/metrics", headers=headers)
    assert response.mimetype == "application/json"
    assert response.get_json()["error"]["code"] == "not_authenticated"
    assert set(response.get_json()["error"]) == {"code", "message"}
    assert "codeservice_http_requests" not in response.get_data(as_text=True)


def test_metrics_with_the_token(tmp_path: Path, keys_dir: Path) -> None:
    client = metrics_client(tmp_path, keys_dir, METRICS_TOKEN=METRICS_TOKEN)
    response = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert response.status_code == 200
    assert "codeservice_http_requests" in response.get_data(as_text=True)
    assert client.get("/metrics", headers={"Authorization": f"bearer  {METRICS_TOKEN}"}).status_code == 200


def test_metrics_without_a_token_configured_are_open(tmp_path: Path, keys_dir: Path) -> None:
    for token in (None, ""):
        client = metrics_client(tmp_path, keys_dir, METRICS_TOKEN=token)
        assert client.get("/metrics").status_code == 200


@pytest.mark.parametrize("env", ["production", "development"])
@pytest.mark.parametrize("token", [None, METRICS_TOKEN])
def test_metrics_carry_the_security_headers(tmp_path: Path, keys_dir: Path, env: str, token: str | None) -> None:
    from codeservice.protection import HSTS, SECURITY_HEADERS

    client = metrics_client(tmp_path, keys_dir, ENV=env, METRICS_TOKEN=token)
    healthz = client.get("/healthz")
    for authorization in ({}, {"Authorization": f"Bearer {METRICS_TOKEN}"}):
        response = client.get("/metrics", headers=authorization)
        for name, value in SECURITY_HEADERS.items():
            assert response.headers[name] == value == healthz.headers[name], name
        assert response.headers.get("Strict-Transport-Security") == (HSTS if env == "production" else None)
        assert response.headers.get("Strict-Transport-Security") == healthz.headers.get("Strict-Transport-Security")


def test_each_app_has_its_own_registry(app_config: dict[str, Any], client: Any) -> None:
    client.get("/healthz")
    other = create_app(app_config)
    assert samples(other.test_client(), "codeservice_http_requests_total") == {}
    assert samples(client, "codeservice_http_requests_total")


def test_verify_decisions_codes_and_usage_are_counted(logged_in: Any, runner: Any) -> None:
    client = logged_in
    _, key = add_scanner(runner, scenes="clinic,venue")
    scanner = {"Authorization": f"Bearer {key}"}
    token = client.get("/api/v1/code").get_json()["token"]
    assert client.get("/api/v1/code.png").status_code == 200
    expected: dict[tuple[str, str], int] = {}
    for body in (
        {"token": token, "scene": "venue"},
        {"token": token, "scene": "venue"},
        {"token": "x", "scene": "venue"},
        {"token": token, "scene": "clinic", "context": {"department": "dental"}},
    ):
        decision = client.post("/api/v1/verify", json=body, headers=scanner).get_json()
        expected[(body["scene"], decision["code"])] = expected.get((body["scene"], decision["code"]), 0) + 1
    assert client.post("/api/v1/verify", json={"token": token, "scene": "transit"}, headers=scanner).status_code == 403
    assert len(expected) >= 3  # accepted, replayed and a malformed token at least

    decisions = samples(client, "codeservice_verify_decisions_total")
    assert decisions == {(("code", code), ("scene", scene)): n for (scene, code), n in expected.items()}
    assert samples(client, "codeservice_codes_issued_total") == {(("format", "json"),): 1, (("format", "png"),): 1}
    assert client.get("/code").status_code == 200  # the page renders its first code itself
    assert samples(client, "codeservice_codes_issued_total") == {
        (("format", "json"),): 1,
        (("format", "png"),): 1,
        (("format", "page"),): 1,
    }

    record = client.get("/api/v1/me/usage?limit=1").get_json()["records"][0]
    assert client.post("/api/v1/usage", json={"records": [record]}, headers=scanner).get_json()["duplicates"] == 1
    assert client.post("/api/v1/usage", json={"records": [1]}, headers=scanner).status_code == 400
    assert samples(client, "codeservice_usage_batches_total") == {
        (("outcome", "stored"),): 1,
        (("outcome", "rejected"),): 1,
    }
    assert samples(client, "codeservice_usage_records_total") == {
        (("result", "accepted"),): 0,
        (("result", "duplicate"),): 1,
    }


def test_multiprocess_mode_sums_the_workers(tmp_path: Path, keys_dir: Path) -> None:
    """With PROMETHEUS_MULTIPROC_DIR, /metrics adds up what every process recorded."""
    (tmp_path / "prom").mkdir()
    script = textwrap.dedent(
        f"""
        from codeservice import create_app
        app = create_app({{"DATABASE_URL": "sqlite:///{tmp_path / 'mp.db'}", "KEYS_DIR": {str(keys_dir)!r}}})
        app.test_client().get("/healthz")
        print(app.test_client().get("/metrics").get_data(as_text=True))
        """
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom")}
    outputs = [
        subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True).stdout
        for _ in range(2)
    ]
    (family,) = [f for f in text_string_to_metric_families(outputs[1]) if f.name == "codeservice_http_requests"]
    (sample,) = [s for s in family.samples if s.labels.get("route") == "/healthz"]
    assert sample.value == 2  # the first process's request too


# -- readiness -------------------------------------------------------------------------


def test_ready(app: Flask, client: Any) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ready", "checks": {"database": "ok", "signing_key": "ok"}}
    assert validate(openapi_document(app), response_schema(openapi_document(app), "/readyz", "get", 200),
                    response.get_json()) == []


@pytest.mark.parametrize("url", [CLOSED_PORT_URL, "sqlite:///{tmp}/missing/dir/x.db"], ids=["postgresql", "sqlite"])
def test_not_ready_without_the_database(tmp_path: Path, url: str, log_lines: io.StringIO) -> None:
    app = create_app({"DATABASE_URL": url.format(tmp=tmp_path), "KEYS_DIR": str(new_keys_dir(tmp_path / "keys"))})
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["checks"] == {"database": "failed", "signing_key": "ok"}
    assert body["error"]["code"] == "not_ready" and "database" in body["error"]["message"]
    document = openapi_document(app)
    assert validate(document, response_schema(document, "/readyz", "get", 503), body) == []
    assert "127.0.0.1" not in log_lines.getvalue() and str(tmp_path) not in log_lines.getvalue()
    assert app.test_client().get("/healthz").status_code == 200  # liveness needs nothing
    with app.app_context():
        db.engine().dispose()


def test_not_ready_without_a_signing_key(tmp_path: Path, database_url: str) -> None:
    (tmp_path / "empty").mkdir()
    app = create_app({"DATABASE_URL": database_url, "KEYS_DIR": str(tmp_path / "empty")})
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"] == {"database": "ok", "signing_key": "failed"}
    with app.app_context():
        db.engine().dispose()
