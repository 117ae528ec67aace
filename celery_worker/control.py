"""Remote-control commands Lethe adds to every Celery worker (``celery.worker.control``).

``lethe_cache_evict``: drop object keys from this worker's stage-file cache. The process
that destroys a stage's bytes evicts its own copy at once and broadcasts this command
(``governance.artifacts.artifact_keys_evict_everywhere``), so the other workers, on any
machine, drop theirs too; web processes answer it through their own listener
(``governance.cache_listener``). celery_worker/celery.py imports this module, so every
worker registers the command before it consumes anything.
"""

from __future__ import annotations

from typing import Any

from celery.worker.control import control_command

EVICT_COMMAND = "lethe_cache_evict"


@control_command(  # type: ignore[untyped-decorator]
    name=EVICT_COMMAND, args=[("keys", list)], signature="<object key> [...]"
)
def lethe_cache_evict(state: Any, keys: list[str]) -> dict[str, Any]:
    """Evict ``keys`` from this process's stage-file cache; the reply lists those held."""
    from governance.artifacts import stage_keys_evict

    return {"ok": stage_keys_evict(keys)}
