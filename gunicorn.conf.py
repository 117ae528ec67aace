"""gunicorn's configuration for Lethe: ``gunicorn governance.wsgi`` from the repository root.

gunicorn reads this file from the working directory by itself (or name it: ``-c``).
Every value comes from the environment, through governance.settings' parsers (an empty
variable counts as unset, a malformed one stops start-up with its name); a command-line
flag still wins. docs/operations.md "Web server" explains the choices.

- ``LETHE_BIND``: where to listen, ``127.0.0.1:8000`` (``0.0.0.0:8000`` in a container,
  behind the TLS proxy); several addresses comma-separated.
- ``WEB_CONCURRENCY``: worker processes, 2 by default. Each keeps its own loaded models
  for predictions (hundreds of MB per model), so size this by memory, not only by cores.
- ``LETHE_WEB_THREADS``: threads per worker (gthread), 4 by default: requests mostly
  wait on the database, and threads share the worker's loaded models.
- ``LETHE_WEB_TIMEOUT_S``: a worker silent this long is killed and replaced (60; a
  first prediction loads its model, a certificate PDF renders).
- ``LETHE_WEB_GRACEFUL_TIMEOUT_S``: on restart or SIGTERM, how long requests in flight
  may finish (30). ``LETHE_WEB_KEEPALIVE_S``: idle keep-alive behind a proxy (5).
- ``LETHE_WEB_MAX_REQUESTS``: recycle a worker after this many requests (0: never),
  with up to 10 % jitter so workers do not restart together.
"""

from __future__ import annotations

from typing import Any

from governance.settings import envint, envstr

wsgi_app = "governance.wsgi:application"
bind = [address.strip() for address in envstr("LETHE_BIND", "127.0.0.1:8000").split(",")]
workers = envint("WEB_CONCURRENCY", 2)
worker_class = "gthread"
threads = envint("LETHE_WEB_THREADS", 4)
timeout = envint("LETHE_WEB_TIMEOUT_S", 60)
graceful_timeout = envint("LETHE_WEB_GRACEFUL_TIMEOUT_S", 30)
keepalive = envint("LETHE_WEB_KEEPALIVE_S", 5)
max_requests = envint("LETHE_WEB_MAX_REQUESTS", 0)
max_requests_jitter = max_requests // 10

# Workers import Django themselves (no preload): a model or a database connection opened
# in the master would be shared, broken, by every forked worker.
preload_app = False

# Logs on stderr, for the supervisor or container runtime to collect. One access line per
# request: client, request line, status, bytes, milliseconds, the request id Lethe put in
# X-Request-ID (the same id as in its log records and 5xx bodies), referrer, user agent.
accesslog = "-"
errorlog = "-"
loglevel = envstr("LETHE_LOG_LEVEL", "info").lower()
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms rid=%({x-request-id}o)s "%(f)s" "%(a)s"'


def post_worker_init(worker: Any) -> None:
    """Each web worker, once Django is loaded, hears the cache-eviction broadcast (and
    sweeps its stage cache): a stage destroyed by an erasure leaves this worker's cache
    at once (governance/cache_listener.py). No thread when the store is a local folder."""
    from governance.cache_listener import cache_listener_start

    cache_listener_start()
