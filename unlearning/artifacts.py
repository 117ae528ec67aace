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
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

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


def save_artifact(artifact: StageArtifact, path: Path) -> str:
    """Write atomically (temp file + rename) so a crash never leaves a half stage.

    Returns:
        The artifact's tensor digest.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "shard": artifact.key.shard,
        "prefix": list(artifact.key.prefix),
        "recipe": artifact.recipe,
        "metrics": artifact.metrics,
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        tensors = {n: t.detach().cpu().contiguous() for n, t in artifact.tensors.items()}
        save_file(tensors, tmp, metadata={_METADATA_KEY: json.dumps(meta, sort_keys=True)})
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return artifact.digest


def load_artifact(path: Path) -> StageArtifact:
    """Read a stage artifact written by ``save_artifact``."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = json.loads((f.metadata() or {})[_METADATA_KEY])
    tensors = load_file(str(path))
    key = StageKey(int(meta["shard"]), tuple(int(s) for s in meta["prefix"]))
    return StageArtifact(key=key, tensors=tensors, recipe=meta["recipe"], metrics=meta["metrics"])


class LocalArtifactStore:
    """Stage artifacts in a folder: ``<root>/shard-000/stage-2-0-1.safetensors``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, key: StageKey) -> Path:
        return self.root / f"{key.slug()}.safetensors"

    def has(self, key: StageKey) -> bool:
        return self.path(key).is_file()

    def save(self, artifact: StageArtifact) -> str:
        return save_artifact(artifact, self.path(artifact.key))

    def load(self, key: StageKey) -> StageArtifact:
        """Read a stage; FileNotFoundError when its bytes are gone (destroyed or retired)."""
        path = self.path(key)
        if not path.is_file():
            raise FileNotFoundError(f"stage {key.slug()}: no artifact at {path}")
        return load_artifact(path)

    def delete(self, key: StageKey) -> bool:
        """Destroy a stage's bytes; True when a file was removed."""
        path = self.path(key)
        existed = path.is_file()
        path.unlink(missing_ok=True)
        return existed

    def keys(self) -> Iterator[StageKey]:
        for path in sorted(self.root.glob("shard-*/stage-*.safetensors")):
            shard = int(path.parent.name.removeprefix("shard-"))
            prefix = tuple(int(s) for s in path.stem.removeprefix("stage-").split("-"))
            yield StageKey(shard, prefix)
