"""Logs, metrics and readiness: what an operator sees of a running service.

- **Logs**: one JSON object per line on standard error, from the ``codeservice``
  logger and its children (``time``, ``level``, ``logger``, ``message``, and
  ``request_id`` during a request). Each request gets an id, the caller's
  ``X-Request-ID`` when it is 1 to 64 characters of ``[A-Za-z0-9._-]``, a new
  one otherwise; it is echoed in the response's ``X-Request-ID``. Each request
  ends with one ``codeservice.access`` line at INFO: method, path (never the
  query string), status and duration. Bodies, cookies and headers are never
  logged, nor an exception's message (a database error's may hold the
  statement's parameters): only its type and stack.
- **Metrics**: ``/metrics`` in the Prometheus text format, served by a WSGI
  wrapper in front of Flask (so it is no route of the JSON API, and its scrapes
  are neither logged nor counted). Each app has its own registry. Behind a
  proxy, expose it to the scraper only; with ``METRICS_TOKEN`` set it also
  wants ``Authorization: Bearer <token>`` (401 ``not_authenticated`` without
  it). It carries the same security headers as every other response. Under
  gunicorn with several workers, set ``PROMETHEUS_MULTIPROC_DIR`` to an empty
  directory before start (each worker writes its values there; ``/metrics``
  adds them up) and call
  ``prometheus_client.multiprocess.mark_process_dead(worker.pid)`` from
  gunicorn's ``child_exit`` hook.
- **Readiness**: :func:`readiness` checks the database and the signing key for
  ``/readyz``; ``/healthz`` stays a liveness check with no dependencies.
"""

from __future__ import annotations

import functools
import hmac
import json
import logging
import os
import re
import sys
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from flask import Flask, Response, current_app, g, has_request_context, request
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    make_wsgi_app,
    multiprocess,
)
from sqlalchemy import text

from . import db
from .context import key_store
from .errors import ClientError, ConfigError, NotAuthenticated
from .extensions import METRICS
from .protection import security_headers
from .scanners import bearer_key

__all__ = [
    "READINESS_CHECKS",
    "JsonFormatter",
    "RequestIdFilter",
    "counts_usage_batches",
    "init_app",
    "readiness",
    "record_code_issued",
    "record_usage_batch",
    "record_verify_decision",
]

REQUEST_ID_HEADER = "X-Request-ID"
VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}\Z")
METRICS_PATH = "/metrics"
LOGGER_NAME = "codeservice"
ACCESS_LOGGER = logging.getLogger("codeservice.access")
UNMATCHED_ROUTE = "unmatched"  # 404s and 405s: never the raw path (unbounded labels)

F = TypeVar("F", bound=Callable[..., Any])


# -- logs ----------------------------------------------------------------------------


class JsonFormatter(logging.Formatter):
    """A record as one line of JSON; the request's fields when the record has them."""

    REQUEST_FIELDS = ("request_id", "method", "path", "status", "duration_ms")
    _ENCODER = json.JSONEncoder(ensure_ascii=False, default=str)  # one for every line, not one per line

    def __init__(self) -> None:
        super().__init__()
        self._second: tuple[int, str] = (-1, "")  # the last second formatted, ``YYYY-MM-DDTHH:MM:SS``

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self._time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in self.REQUEST_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info and record.exc_info[0] is not None:
            # The type and the stack, not the message (see the module's docstring).
            entry["exception"] = record.exc_info[0].__name__
            entry["stack"] = "".join(traceback.format_tb(record.exc_info[2]))
        return self._ENCODER.encode(entry)

    def _time(self, created: float) -> str:
        """``created`` in UTC as ISO 8601 with milliseconds (``...T07:14:28.098+00:00``), the second's text reused."""
        second = int(created)
        microseconds = round((created - second) * 1e6)  # as datetime.fromtimestamp rounds
        if microseconds >= 1_000_000:
            second, microseconds = second + 1, microseconds - 1_000_000
        cached = self._second
        if cached[0] != second:
            cached = self._second = (second, datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S"))
        return f"{cached[1]}.{microseconds // 1000:03d}+00:00"


class RequestIdFilter(logging.Filter):
    """Adds the current request's id to every record (on a handler: children's records too)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if has_request_context() and not hasattr(record, "request_id"):
            record.request_id = g.get("request_id")
        return True


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is now (as logging's last-resort handler does)."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def configure_logging(level: str | int) -> None:
    """One JSON handler on the ``codeservice`` logger, however many apps are created."""
    if isinstance(level, str):
        if level.upper() not in logging.getLevelNamesMapping():
            raise ConfigError(f"LOG_LEVEL must be a logging level such as INFO or DEBUG, got {level!r}")
        level = level.upper()
    logger = logging.getLogger(LOGGER_NAME)
    if not any(isinstance(handler, _StderrHandler) for handler in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(JsonFormatter())
        handler.addFilter(RequestIdFilter())
        logger.addHandler(handler)
    logger.setLevel(level)


# -- metrics ---------------------------------------------------------------------------


@dataclass
class Metrics:
    """The app's metrics, in its own registry."""

    registry: CollectorRegistry
    requests: Counter
    request_duration: Histogram
    verify_decisions: Counter
    codes_issued: Counter
    usage_batches: Counter
    usage_records: Counter
    db_query_duration: Histogram
    _labelled: dict[tuple[Any, ...], Any] = field(default_factory=dict)
    """The children of ``labels()`` already asked for, by their labels (as many as the metrics' own)."""

    def count_request(self, route: str, method: str, status: int, duration: float) -> None:
        """One request answered: counted by route, method and status, its duration observed by route."""
        key = ("request", route, method, status)
        children = self._labelled.get(key)
        if children is None:
            children = self._labelled[key] = (
                self.requests.labels(route=route, method=method, status=str(status)),
                self.request_duration.labels(route=route),
            )
        children[0].inc()
        children[1].observe(duration)

    def count_verify_decision(self, scene: str, code: str) -> None:
        key = ("verify", scene, code)
        child = self._labelled.get(key)
        if child is None:
            child = self._labelled[key] = self.verify_decisions.labels(scene=scene, code=code)
        child.inc()

    @classmethod
    def create(cls) -> Metrics:
        registry = CollectorRegistry()
        return cls(
            registry=registry,
            requests=Counter(
                "codeservice_http_requests", "HTTP requests answered.", ["route", "method", "status"],
                registry=registry,
            ),
            request_duration=Histogram(
                "codeservice_http_request_duration_seconds", "Time to answer a request.", ["route"],
                registry=registry,
            ),
            verify_decisions=Counter(
                "codeservice_verify_decisions", "Online verify decisions.", ["scene", "code"], registry=registry
            ),
            codes_issued=Counter(
                "codeservice_codes_issued",
                "Codes signed for residents, by how they were sent: json, png, or page (the /code page's first code).",
                ["format"],
                registry=registry,
            ),
            usage_batches=Counter(
                "codeservice_usage_batches", "Usage batches uploaded by scanners: stored or rejected.",
                ["outcome"], registry=registry,
            ),
            usage_records=Counter(
                "codeservice_usage_records", "Records of stored usage batches.", ["result"], registry=registry
            ),
            db_query_duration=Histogram(
                "codeservice_db_query_duration_seconds", "Time of each database statement.", registry=registry,
                buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            ),
        )


def _metrics() -> Metrics:
    return cast(Metrics, current_app.extensions[METRICS])


def database_latency() -> Callable[[float], None]:
    """Observes one statement's time in seconds, for code that runs statements on the driver itself."""
    return _metrics().db_query_duration.observe


def record_verify_decision(scene: str, code: str) -> None:
    _metrics().count_verify_decision(scene, code)


def record_code_issued(format: str) -> None:  # the label's name
    _metrics().codes_issued.labels(format=format).inc()


def record_usage_batch(accepted: int, duplicates: int) -> None:
    metrics = _metrics()
    metrics.usage_batches.labels(outcome="stored").inc()
    metrics.usage_records.labels(result="accepted").inc(accepted)
    metrics.usage_records.labels(result="duplicate").inc(duplicates)


def counts_usage_batches(view: F) -> F:
    """Counts a batch refused as a whole (400: malformed, too large, a bad record) as rejected."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return view(*args, **kwargs)
        except ClientError as error:
            if error.status == 400:
                _metrics().usage_batches.labels(outcome="rejected").inc()
            raise

    return wrapper  # type: ignore[return-value]


def _exposition_registry(registry: CollectorRegistry) -> CollectorRegistry:
    """The app's registry, or under PROMETHEUS_MULTIPROC_DIR every worker's values summed."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return registry
    combined = CollectorRegistry()
    multiprocess.MultiProcessCollector(combined)
    return combined


class _MetricsMiddleware:
    """``/metrics`` to prometheus_client's WSGI app; every other path to Flask.

    ``/metrics`` gets the headers Flask's responses get (``headers``), and with
    a ``token`` it answers only a request bearing it: others get 401
    ``not_authenticated`` in the API's error shape, with ``WWW-Authenticate``.
    """

    def __init__(
        self,
        wsgi_app: Callable[..., Any],
        metrics_app: Callable[..., Any],
        *,
        token: str | None,
        headers: tuple[tuple[str, str], ...],
    ) -> None:
        self.wsgi_app = wsgi_app
        self.metrics_app = metrics_app
        self.token = token.encode("utf-8") if token else None
        self.headers = headers

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("PATH_INFO") == METRICS_PATH and environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
            start_response = self._with_headers(start_response)
            if not self._authorized(environ.get("HTTP_AUTHORIZATION")):
                return _unauthorized(environ, start_response)
            return self.metrics_app(environ, start_response)
        return self.wsgi_app(environ, start_response)

    def _authorized(self, authorization: str | None) -> bool:
        if self.token is None:
            return True
        # WSGI gives header values as latin-1 text: back to the bytes that were sent.
        presented = (bearer_key(authorization) or "").encode("latin-1", "replace")
        return hmac.compare_digest(presented, self.token)  # constant time

    def _with_headers(self, start_response: Callable[..., Any]) -> Callable[..., Any]:
        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            present = {name.lower() for name, _value in headers}
            headers = [*headers, *((name, value) for name, value in self.headers if name.lower() not in present)]
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

        return start


def _unauthorized(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
    error = NotAuthenticated("send Authorization: Bearer <the metrics token>")
    body = json.dumps({"error": {"code": error.code, "message": error.message}})
    response = Response(body, status=error.status, mimetype="application/json")
    response.headers["WWW-Authenticate"] = "Bearer"
    return response(environ, start_response)


def _time_queries(engine: Any, histogram: Histogram) -> None:
    """The SQLAlchemy recipe: a start time per statement on the connection, observed after it."""
    from sqlalchemy import event

    def before(conn: Any, _cursor: Any, _statement: Any, _parameters: Any, _context: Any, _many: Any) -> None:
        conn.info.setdefault("codeservice_query_start", []).append(time.perf_counter())

    def after(conn: Any, _cursor: Any, _statement: Any, _parameters: Any, _context: Any, _many: Any) -> None:
        starts = conn.info.get("codeservice_query_start")
        if starts:
            histogram.observe(time.perf_counter() - starts.pop())

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)


# -- requests --------------------------------------------------------------------------


def _start_request() -> None:
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    g.request_id = incoming if VALID_REQUEST_ID.match(incoming) else uuid.uuid4().hex
    g.request_started = time.perf_counter()


def _finish_request(response: Response) -> Response:
    # The request's objects once each, not once per use through their proxies.
    this, request_g = request._get_current_object(), g._get_current_object()  # type: ignore[attr-defined]
    started = request_g.get("request_started")
    duration = time.perf_counter() - started if started is not None else 0.0
    route = this.url_rule.rule if this.url_rule is not None else UNMATCHED_ROUTE
    method, path, status = this.method, this.path, response.status_code
    _metrics().count_request(route, method, status, duration)
    request_id = request_g.get("request_id")
    if request_id:
        response.headers[REQUEST_ID_HEADER] = request_id
    if ACCESS_LOGGER.isEnabledFor(logging.INFO):
        # Logger.info's record, without its search of the stack for the caller (no line shows it).
        record = ACCESS_LOGGER.makeRecord(ACCESS_LOGGER.name, logging.INFO, __file__, 0, "%s %s %s",
                                          (method, path, status), None)
        record.method = method
        record.path = path  # the path only: never the query string
        record.status = status
        record.duration_ms = round(duration * 1000, 3)
        ACCESS_LOGGER.handle(record)
    return response


# -- readiness -------------------------------------------------------------------------


def _check_database() -> None:
    with db.engine().connect() as connection:
        connection.execute(text("SELECT 1"))


def _check_signing_key() -> None:
    key_store().signer()


# name -> a check that raises when the dependency is not usable (``/readyz``, the OpenAPI document).
READINESS_CHECKS: dict[str, Callable[[], None]] = {
    "database": _check_database,
    "signing_key": _check_signing_key,
}


def readiness() -> dict[str, str]:
    """Each check's result for the current app: ``"ok"`` or ``"failed"`` (and a WARNING line naming why)."""
    checks: dict[str, str] = {}
    for name, check in READINESS_CHECKS.items():
        try:
            check()
            checks[name] = "ok"
        except Exception as exc:  # any failure means "not ready"
            # The exception's type only: its message may name hosts, paths or parameters.
            logging.getLogger(__name__).warning("readiness: %s failed (%s)", name, exc.__class__.__name__)
            checks[name] = "failed"
    return checks


# -- wiring ----------------------------------------------------------------------------


def init_app(app: Flask) -> None:
    """Logging, the request id and access line, the metrics and ``/metrics`` (after ``db.init_app``)."""
    configure_logging(app.config.get("LOG_LEVEL", "INFO"))
    metrics = Metrics.create()
    app.extensions[METRICS] = metrics
    _time_queries(db.engine(app), metrics.db_query_duration)
    app.before_request(_start_request)
    app.after_request(_finish_request)
    metrics_app = make_wsgi_app(_exposition_registry(metrics.registry))
    app.wsgi_app = _MetricsMiddleware(  # type: ignore[method-assign]
        app.wsgi_app,
        metrics_app,
        token=(app.config.get("METRICS_TOKEN") or "").strip() or None,
        headers=security_headers(app.config),
    )
