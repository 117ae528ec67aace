"""Stage artifacts: one group's LoRA tensors plus the head snapshot after that stage.

A stage is identified by its shard and its *prefix* (the slices it was trained on, in
order); its position is the prefix length. Sequences of one shard that share a prefix
share the stage, so the prefix, not the sequence index, is the key.

Artifacts are compared by ``tensor_digest``: a SHA-256 over tensor names, dtypes, shapes
and bytes in sorted order. safetensors writes its metadata dict in a per-process random
order, so two files holding identical tensors may differ byte for byte; the digest does not.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

# The object stores live in unlearning.objects; they are named here too, as the one place
# callers import stage storage from.
from unlearning.objects import (
    ArtifactStore,
    FolderStore,
    StageFileCache,
    folder_keys,
    write_atomically,
)

__all__ = [
    "ArtifactDigestError",
    "ArtifactStore",
    "FolderStore",
    "LocalArtifactStore",
    "StageArtifact",
    "StageFileCache",
    "StageKey",
    "StageStore",
    "artifact_bytes",
    "artifact_from_bytes",
    "folder_keys",
    "load_artifact",
    "save_artifact",
    "tensor_digest",
]

_METADATA_KEY = "lethe"  # one key only, so the file bytes are stable too


def tensor_digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over sorted (name, dtype, shape, raw bytes); independent of file metadata."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(repr(tuple(t.shape)).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return "sha256:" + h.hexdigest()


@dataclass(frozen=True, order=True)
class StageKey:
    """A stage of one shard: trained on ``prefix`` (slice indices, in sequence order)."""

    shard: int
    prefix: tuple[int, ...]

    @property
    def position(self) -> int:
        """1-based stage position = layer group trained = number of slices read."""
        return len(self.prefix)

    @property
    def parent(self) -> StageKey | None:
        """The stage this one continues from (None for a first stage)."""
        return StageKey(self.shard, self.prefix[:-1]) if len(self.prefix) > 1 else None

    def slug(self) -> str:
        return f"shard-{self.shard:03d}/stage-{'-'.join(map(str, self.prefix))}"


@dataclass(frozen=True)
class StageArtifact:
    """Tensors and provenance of one trained stage.

    Attributes:
        key: shard and prefix.
        tensors: the group's LoRA A/B tensors and the head after this stage, by parameter name.
        recipe: everything a replay needs (versions, threads, seeds, settings, lineage digest).
        metrics: training metrics (losses, steps, examples, seconds).
    """

    key: StageKey
    tensors: Mapping[str, torch.Tensor]
    recipe: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        return tensor_digest(self.tensors)


def artifact_bytes(artifact: StageArtifact) -> bytes:
    """The stage as one safetensors file's bytes (tensors on CPU, provenance in metadata)."""
    from safetensors.torch import save

    meta = {
        "shard": artifact.key.shard,
        "prefix": list(artifact.key.prefix),
        "recipe": artifact.recipe,
        "metrics": artifact.metrics,
    }
    tensors = {n: t.detach().cpu().contiguous() for n, t in artifact.tensors.items()}
    return save(tensors, metadata={_METADATA_KEY: json.dumps(meta, sort_keys=True)})


def artifact_from_bytes(data: bytes) -> StageArtifact:
    """Read bytes written by ``artifact_bytes``; ValueError when they are not a stage file."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    try:
        tensors = load(data)
        meta = json.loads(_metadata(data)[_METADATA_KEY])
        key = StageKey(int(meta["shard"]), tuple(int(s) for s in meta["prefix"]))
    except (SafetensorError, KeyError, ValueError, TypeError) as exc:
        raise ValueError(f"not a stage artifact: {exc}") from exc
    return StageArtifact(key=key, tensors=tensors, recipe=meta["recipe"], metrics=meta["metrics"])


def _metadata(data: bytes) -> dict[str, str]:
    """A safetensors file's ``__metadata__``: the JSON header after its 8-byte length."""
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + size])
    return dict(header.get("__metadata__") or {})


def save_artifact(artifact: StageArtifact, path: Path) -> str:
    """Write atomically (temp file + rename) so a crash never leaves a half stage.

    Returns:
        The artifact's tensor digest.
    """
    write_atomically(Path(path), artifact_bytes(artifact))
    return artifact.digest


def load_artifact(path: Path | str) -> StageArtifact:
    """Read a stage artifact written by ``save_artifact``."""
    return artifact_from_bytes(Path(path).read_bytes())


class ArtifactDigestError(ValueError):
    """A stage's bytes do not hold the tensors its row (or manifest) names."""


class StageStore:
    """A model generation's stages in an ``ArtifactStore``, under one key prefix.

    ``load`` reads through an optional ``StageFileCache`` and checks the tensor digest
    the caller expects before anything uses the tensors: a cached copy that does not
    match is evicted and the store is asked once more; bytes in the store that do not
    match are refused.
    """

    def __init__(
        self, objects: ArtifactStore, prefix: str = "", cache: StageFileCache | None = None
    ) -> None:
        self.objects = objects
        self.prefix = prefix.strip("/")
        self.cache = cache

    def object_key(self, key: StageKey, attempt: str | None = None) -> str:
        """A stage's object key; ``attempt`` names one training attempt's own object.

        Two workers may train one stage (a lease ran out while the first still trained):
        each writes under its own attempt, so the one whose result is not recorded deletes
        only its own bytes, never the object the stage row names.
        """
        name = f"{key.slug()}.{attempt}.safetensors" if attempt else f"{key.slug()}.safetensors"
        return f"{self.prefix}/{name}" if self.prefix else name

    def stage_objects(self, key: StageKey) -> list[str]:
        """Every object of this stage in the store, whatever attempt wrote it."""
        start = self.object_key(key).removesuffix("safetensors")  # ".../stage-2-0."
        return [k for k in self.objects.list(start) if k.endswith(".safetensors")]

    def has(self, key: StageKey) -> bool:
        return self.objects.exists(self.object_key(key))

    def save(self, artifact: StageArtifact, attempt: str | None = None) -> str:
        """Store a stage under ``object_key(artifact.key, attempt)``; returns its digest."""
        data = artifact_bytes(artifact)
        object_key = self.object_key(artifact.key, attempt)
        self.objects.put(object_key, data)
        if self.cache is not None:
            self.cache.put(object_key, data)
        return artifact.digest

    def load(
        self, key: StageKey, digest: str | None = None, object_key: str | None = None
    ) -> StageArtifact:
        """Read a stage; FileNotFoundError when its bytes are gone (destroyed or retired).

        Args:
            key: the stage.
            digest: the tensor digest the stage must have (its row's or the manifest's);
                None skips the check (tools reading a folder they wrote themselves).
            object_key: the object its row names; default ``object_key(key)``.
        """
        object_key = object_key or self.object_key(key)
        if self.cache is not None:
            data = self.cache.get(object_key)
            if data is not None:
                try:
                    return self._checked(key, artifact_from_bytes(data), digest)
                except ValueError:
                    self.cache.evict(object_key)  # a stale or damaged copy: ask the store
        with self.objects.open(object_key) as f:
            data = f.read()
        artifact = self._checked(key, artifact_from_bytes(data), digest)
        if self.cache is not None:
            self.cache.put(object_key, data)
        return artifact

    @staticmethod
    def _checked(key: StageKey, artifact: StageArtifact, digest: str | None) -> StageArtifact:
        if artifact.key != key:
            raise ArtifactDigestError(f"stage {key.slug()}: the file holds {artifact.key.slug()}")
        if digest is not None and artifact.digest != digest:
            raise ArtifactDigestError(
                f"stage {key.slug()}: tensor digest {artifact.digest} differs from {digest}"
            )
        return artifact

    def delete(self, key: StageKey, object_key: str | None = None) -> list[str]:
        """Destroy a stage's bytes in the store and in this process's cache.

        With ``object_key``, that one object (a discarded attempt); otherwise every object
        of the stage, whichever attempt wrote it. Returns the keys that held bytes.
        """
        keys = (
            [object_key] if object_key else sorted({self.object_key(key), *self.stage_objects(key)})
        )
        if self.cache is not None:
            for k in keys:
                self.cache.evict(k)
        return [k for k in keys if self.objects.delete(k)]

    def copy_from(self, other: StageStore, key: StageKey, object_key: str | None = None) -> str:
        """Carry a stage from another generation's store (server-side copy, no link).

        Returns the new object key (this generation's plain key for the stage).
        """
        target = self.object_key(key)
        self.objects.copy(object_key or other.object_key(key), target)
        return target

    def keys(self) -> Iterator[StageKey]:
        """Every stage with an object under this prefix (once, however many attempts)."""
        start = f"{self.prefix}/" if self.prefix else ""
        found: set[StageKey] = set()
        for object_key in self.objects.list(start):
            shard, _, stage = object_key[len(start) :].partition("/")
            if not (shard.startswith("shard-") and stage.startswith("stage-")):
                continue
            if not stage.endswith(".safetensors") or "/" in stage:
                continue
            prefix = stage.removeprefix("stage-").split(".")[0]
            found.add(
                StageKey(int(shard.removeprefix("shard-")), tuple(map(int, prefix.split("-"))))
            )
        yield from sorted(found)


class LocalArtifactStore(StageStore):
    """Stage artifacts in a folder: ``<root>/shard-000/stage-2-0-1.safetensors``.

    The engine's own tools (the engine demo, benchmarks) use it without any object store.
    """

    def __init__(self, root: Path) -> None:
        super().__init__(FolderStore(root))
        self.root = Path(root)

    def path(self, key: StageKey) -> Path:
        return self.root / self.object_key(key)
