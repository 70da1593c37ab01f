"""gunicorn settings for production: ``gunicorn -c gunicorn.conf.py``.

Everything an operator changes per environment comes from the environment:

- ``CODESERVICE_BIND``: the address to listen on (default ``127.0.0.1:8000``;
  behind a reverse proxy on another host, its private address).
- ``WEB_CONCURRENCY``: sync worker processes (default 2 x CPUs + 1).
- ``FORWARDED_ALLOW_IPS``: the reverse proxy's addresses, comma-separated
  (default ``127.0.0.1``). Only requests from these have their
  ``X-Forwarded-For``/``X-Forwarded-Proto`` trusted, and rate limits are per
  client address, so it must name the proxy and nothing else.
- ``PROMETHEUS_MULTIPROC_DIR``: an empty directory per instance for
  ``/metrics`` across workers; a worker's files are marked dead when it exits.

The access log goes to standard output and holds no personal data: no client
address, no query string, no cookies or headers other than the request id.
"""

from __future__ import annotations

import multiprocessing
import os

wsgi_app = "wsgi:app"
bind = os.environ.get("CODESERVICE_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY") or multiprocessing.cpu_count() * 2 + 1)
worker_class = "sync"
timeout = 30
graceful_timeout = 30
keepalive = 5
max_requests = 10000
max_requests_jitter = 1000
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")

accesslog = "-"
errorlog = "-"
# method, path without the query string, status, response bytes, duration (ms), request id
access_log_format = (
    'method=%(m)s path="%(U)s" status=%(s)s bytes=%(B)s duration_ms=%(M)s request_id=%({x-request-id}o)s'
)


def child_exit(server, worker):  # gunicorn's hook signature
    """Let /metrics forget an exited worker's live gauges (multiprocess mode only)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
