"""Stage files in the artifact store: Django's ``STORAGES["artifacts"]`` behind the engine's
``ArtifactStore`` protocol, and each process's read-through cache.

The file-system backend (``ARTIFACT_ROOT``) is the embedded default: one machine. With
``LETHE_ARTIFACTS_S3_BUCKET`` the backend is django-storages' S3 storage, and every
training worker, control worker and web process of the deployment reads and destroys the
same objects. Stage rows hold object keys (``Stage.artifact_key``), never paths.

Whether a stage's bytes still exist is asked of the store (a HEAD for S3), never of a
local path: that is the question a certificate's "bytes destroyed" claim answers.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, Storage, storages
from django.utils.functional import cached_property

# Torch-free (unlearning.objects imports none): the one atomic write for stage files.
from unlearning.objects import write_atomically

if TYPE_CHECKING:
    from governance.models import Stage
    from unlearning.artifacts import StageFileCache, StageKey, StageStore

log = logging.getLogger(__name__)


class AtomicFileSystemStorage(FileSystemStorage):
    """Django's file-system storage, writing each file to a temporary name and renaming it,
    so a crash never leaves half a stage file under its key.

    Without a ``location`` option it follows ``settings.ARTIFACT_ROOT`` (read again when
    that setting changes), as ``FileSystemStorage`` follows ``MEDIA_ROOT``.
    """

    @cached_property
    def base_location(self) -> str:
        location = self.__dict__.get("_location")
        return str(location if location is not None else settings.ARTIFACT_ROOT)

    def _clear_cached_properties(self, setting: Any, **kwargs: Any) -> None:
        super()._clear_cached_properties(setting, **kwargs)
        if setting == "ARTIFACT_ROOT":
            self.__dict__.pop("base_location", None)
            self.__dict__.pop("location", None)

    def _save(self, name: str, content: Any) -> str:
        write_atomically(Path(self.path(name)), b"".join(content.chunks()))
        return name.replace("\\", "/")


class DjangoArtifactStore:
    """The engine's ``ArtifactStore`` over one Django storage (file system or S3)."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    @property
    def is_s3(self) -> bool:
        return hasattr(self.storage, "bucket_name")

    def put(self, key: str, data: bytes) -> None:
        saved = self.storage.save(key, ContentFile(data))
        if saved != key:
            # A backend that renames on conflict would leave the row naming other bytes.
            self.storage.delete(saved)
            raise RuntimeError(f"artifact store saved {key!r} as {saved!r}; allow overwrites")

    def open(self, key: str) -> BinaryIO:
        if self.is_s3:
            from botocore.exceptions import ClientError

            try:
                body = self._client().get_object(Bucket=self._bucket(), Key=self._full(key))
            except ClientError as exc:
                if _status(exc) == 404:
                    raise FileNotFoundError(f"{key}: no object") from None
                raise
            return cast(BinaryIO, body["Body"])
        try:
            return cast(BinaryIO, self.storage.open(key, "rb"))
        except FileNotFoundError:
            raise FileNotFoundError(f"{key}: no object") from None

    def exists(self, key: str) -> bool:
        return bool(self.storage.exists(key))

    def delete(self, key: str) -> bool:
        """Delete the object and, in a versioned bucket, every version and delete marker.

        Each version is deleted by its id, ``"null"`` included: an object written before
        versioning was enabled keeps that id, and a plain DELETE in a versioned bucket
        would only stack a delete marker on top of it (SeaweedFS 4.48 and AWS alike).
        """
        if not self.is_s3:
            existed = self.exists(key)
            self.storage.delete(key)
            return existed
        existed = self.exists(key)
        for version in self.versions(key):
            self._client().delete_object(Bucket=self._bucket(), Key=self._full(key), **version)
            existed = True
        if self.exists(key):  # a server that lists no versions
            self.storage.delete(key)
        return existed

    def versions(self, key: str) -> list[dict[str, str]]:
        """``{"VersionId": ...}`` of every version and delete marker the bucket keeps of
        ``key``: ``"null"`` for an unversioned bucket's object (or one written before
        versioning was enabled); empty when nothing is kept, or the store has no versions."""
        if not self.is_s3:
            return []
        from botocore.exceptions import ClientError

        full = self._full(key)
        found: list[dict[str, str]] = []
        try:
            pages = self._client().get_paginator("list_object_versions")
            for page in pages.paginate(Bucket=self._bucket(), Prefix=full):
                for item in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
                    version = item.get("VersionId")
                    if item["Key"] == full and version:
                        found.append({"VersionId": version})
        except ClientError as exc:
            if _status(exc) in (400, 404, 501):
                return []  # the server keeps no versions
            raise
        return found

    def list(self, prefix: str) -> Iterator[str]:
        if self.is_s3:
            base = self._full("")
            full = self._full(prefix) if prefix else base
            pages = self._client().get_paginator("list_objects_v2")
            keys = [
                item["Key"][len(base) :].lstrip("/")
                for page in pages.paginate(Bucket=self._bucket(), Prefix=full)
                for item in page.get("Contents", [])
            ]
            yield from sorted(keys)
            return
        from unlearning.artifacts import folder_keys

        yield from folder_keys(Path(self.storage.path("")), prefix)

    def copy(self, source: str, target: str) -> None:
        """Server-side copy in S3; a byte copy (never a hard link) on the file system."""
        if self.is_s3:
            self._client().copy_object(
                Bucket=self._bucket(),
                Key=self._full(target),
                CopySource={"Bucket": self._bucket(), "Key": self._full(source)},
            )
            return
        write_atomically(
            Path(self.storage.path(target)), Path(self.storage.path(source)).read_bytes()
        )

    # --- S3 details ---------------------------------------------------------------------

    def _client(self) -> Any:
        return cast(Any, self.storage).connection.meta.client

    def _bucket(self) -> str:
        return str(cast(Any, self.storage).bucket_name)

    def _full(self, key: str) -> str:
        """The bucket key of an object key: the storage's location prefix joined on."""
        location = str(getattr(self.storage, "location", "") or "").strip("/")
        return f"{location}/{key}" if location else key


def _status(exc: Any) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


# --- This process's store and cache ------------------------------------------------------

_lock = threading.Lock()
_cache: list[StageFileCache | None] = []


def artifact_objects() -> DjangoArtifactStore:
    """The deployment's artifact store (``STORAGES["artifacts"]``)."""
    return DjangoArtifactStore(storages["artifacts"])


def store_identity() -> str:
    """Which store this process reads (bucket and prefix, or folder): part of what a cached
    ensemble is keyed by, so a changed configuration never serves the old store's stages."""
    storage = storages["artifacts"]
    if hasattr(storage, "bucket_name"):
        endpoint = getattr(storage, "endpoint_url", "") or ""
        return f"s3://{storage.bucket_name}/{getattr(storage, 'location', '')}@{endpoint}"
    return f"file://{getattr(storage, 'location', '')}"  # FileSystemStorage: absolute


def stage_cache() -> StageFileCache | None:
    """This process's stage-file cache; None when the store is a local folder (reading it
    is as fast as a cache) or ``LETHE_ARTIFACT_CACHE_MAX_BYTES`` is 0."""
    from unlearning.artifacts import StageFileCache

    with _lock:
        if not _cache:
            limit = int(settings.LETHE_ARTIFACT_CACHE_MAX_BYTES)
            remote = artifact_objects().is_s3
            _cache.append(
                StageFileCache(Path(settings.LETHE_ARTIFACT_CACHE_DIR), limit)
                if remote and limit > 0
                else None
            )
        return _cache[0]


def stage_cache_reset() -> None:
    """Forget this process's cache object (settings changed: tests, benchmarks)."""
    with _lock:
        _cache.clear()


def generation_prefix(model_id: int, generation: int) -> str:
    return f"model-{model_id}/gen-{generation}"


def stage_store(model_id: int, generation: int) -> StageStore:
    """One model generation's stages: ``model-7/gen-1/shard-000/stage-2-0.safetensors``."""
    from unlearning.artifacts import StageStore

    return StageStore(artifact_objects(), generation_prefix(model_id, generation), stage_cache())


def stage_store_of(stage: Stage) -> StageStore:
    return stage_store(stage.shard.model_id, stage.shard.generation)


def stage_object_key(stage: Stage) -> str:
    """The object a stage row names (kept after its bytes are destroyed, as the name of
    what was deleted); rows from before object keys fall back to the plain key."""
    return stage.artifact_key or stage_store_of(stage).object_key(_stage_key(stage))


def stage_load(stage: Stage) -> Any:
    """A trained stage's artifact, from the cache or the store, checked against its row's
    tensor digest (``ArtifactDigestError`` when the bytes differ)."""
    return stage_store_of(stage).load(
        _stage_key(stage), stage.tensor_digest or None, stage_object_key(stage)
    )


def stage_bytes_destroy(stage: Stage) -> list[str]:
    """Delete every object of a stage (each attempt's, each version) from the store and
    this process's cache; returns the object keys that held bytes. Other processes' caches
    drop them through ``artifact_keys_evict_everywhere`` and the sweep."""
    store = stage_store_of(stage)
    key = _stage_key(stage)
    extra = [stage.artifact_key] if stage.artifact_key else []
    gone = store.delete(key)
    for object_key in extra:
        if object_key not in gone and store.delete(key, object_key):
            gone.append(object_key)
    return gone


def stage_bytes_exist(stage: Stage) -> list[str]:
    """Where a stage's bytes still are in the store: each object of the stage (any attempt)
    a listing or a HEAD finds, and each version a versioned bucket still keeps of them.
    Empty means gone."""
    objects = artifact_objects()
    store = stage_store_of(stage)
    keys = sorted({stage_object_key(stage), *store.stage_objects(_stage_key(stage))})
    found = [f"object {k}" for k in keys if objects.exists(k)]
    return found + [f"version {k}@{v['VersionId']}" for k in keys for v in objects.versions(k)]


def stage_keys_evict(keys: Iterable[str]) -> list[str]:
    """Drop object keys from this process's cache folder; returns the keys it held."""
    cache = stage_cache()
    if cache is None:
        return []
    return [key for key in keys if cache.evict(key)]


def stage_cache_sweep() -> list[str]:
    """Evict every cached file that is no longer a trained stage's bytes.

    The safety net under the eviction broadcast: a process that missed it (it was down,
    or it is new on a machine whose folder outlived the last one) drops destroyed and
    retired stages the next time it sweeps (at start and when a manifest moves on).
    """
    from governance.models import Stage

    cache = stage_cache()
    if cache is None:
        return []
    held = cache.keys()
    if not held:
        return []
    live = set(
        Stage.objects.filter(state=Stage.State.TRAINED, artifact_key__in=held).values_list(
            "artifact_key", flat=True
        )
    )
    return stage_keys_evict(k for k in held if k not in live)


def _stage_key(stage: Stage) -> StageKey:
    from governance import engine

    return engine.stage_key(stage)


# --- Every process's cache ---------------------------------------------------------------

# How long a purge waits for the eviction broadcast to reach the broker before it moves on.
EVICT_BROADCAST_TIMEOUT_S = 5.0


def artifact_keys_evict_everywhere(keys: Iterable[str]) -> list[str]:
    """Drop destroyed objects from every process's cache: this one's at once (returns the
    keys it held); every Celery worker and web process through the ``lethe_cache_evict``
    broadcast (celery_worker/control.py, governance/cache_listener.py).

    A broadcast that cannot be sent (the broker is down) never fails the purge that asked
    for it: the bytes are already gone from the store, a process that missed it still
    checks the manifest version before each prediction, and ``stage_cache_sweep`` drops
    the copy when that process next starts or sweeps. It is logged.
    """
    keys = list(keys)
    held = stage_keys_evict(keys)
    # Only a shared bucket has caches in front of it (stage_cache): with the local folder
    # no process holds copies, and an erasure need not pay for a broadcast.
    if keys and artifact_objects().is_s3:
        _evict_broadcast(keys)
    return held


def _evict_broadcast(keys: list[str]) -> None:
    """Publish the broadcast on a connection of its own, in a daemon thread joined for at
    most ``EVICT_BROADCAST_TIMEOUT_S``: kombu retries a pidbox publish for ever when the
    broker drops mid-way, and a purge must not wait on it."""
    failed: list[BaseException] = []

    def publish() -> None:
        from celery_worker.celery import app
        from celery_worker.control import EVICT_COMMAND

        try:
            with app.connection_for_write(connect_timeout=EVICT_BROADCAST_TIMEOUT_S) as conn:
                conn.ensure_connection(
                    max_retries=1, interval_start=0, timeout=EVICT_BROADCAST_TIMEOUT_S
                )
                # timeout=0: no expiry. A solo worker reads its mailbox only between tasks
                # (a training task runs for minutes) and the default 1 s would drop it.
                app.control.broadcast(
                    EVICT_COMMAND, arguments={"keys": keys}, connection=conn, timeout=0
                )
        except Exception as exc:  # kombu raises the transport's own errors
            failed.append(exc)

    thread = threading.Thread(target=publish, name="lethe-evict-broadcast", daemon=True)
    thread.start()
    thread.join(EVICT_BROADCAST_TIMEOUT_S)
    if thread.is_alive() or failed:
        reason = f"{type(failed[0]).__name__}: {failed[0]}" if failed else "timed out"
        log.warning(
            "artifacts: cache eviction broadcast for %d object(s) not sent (%s); other "
            "processes drop them at their next cache sweep",
            len(keys),
            reason,
        )
