"""Objects by key: the storage protocol stage files live behind, a local folder that
implements it, and a process's bounded read-through cache of such objects.

Keys (``model-7/gen-1/shard-000/stage-2-0.safetensors``) use ``/``, never start with it
and never climb out of their store. Nothing here knows what a stage is
(``unlearning.artifacts`` does); nothing here imports torch.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol


def write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class ArtifactStore(Protocol):
    """Bytes by object key (``model-7/gen-1/shard-000/stage-2-0.safetensors``), not by path.

    One protocol for a local folder and an S3-compatible bucket, so the same code trains,
    serves and destroys stages on one machine or many. Keys use ``/`` and never start
    with it. ``delete`` removes every version the store keeps of the key; ``exists`` is
    the question a certificate's "bytes destroyed" claim asks of the store itself.
    """

    def put(self, key: str, data: bytes) -> None: ...

    def open(self, key: str) -> BinaryIO:
        """A readable file object; FileNotFoundError when the key has no object."""
        ...

    def delete(self, key: str) -> bool:
        """Remove the object (all versions); True when something was removed."""
        ...

    def exists(self, key: str) -> bool: ...

    def list(self, prefix: str) -> Iterator[str]:
        """Keys that start with ``prefix``, sorted."""
        ...

    def copy(self, source: str, target: str) -> None:
        """Copy an object inside the store (server-side where the store can)."""
        ...


class FolderStore:
    """An ``ArtifactStore`` over a local folder: the key is the path below ``root``."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / _checked(key)

    def put(self, key: str, data: bytes) -> None:
        write_atomically(self.path(key), data)

    def open(self, key: str) -> BinaryIO:
        path = self.path(key)
        if not path.is_file():
            raise FileNotFoundError(f"{key}: no object")
        return path.open("rb")

    def delete(self, key: str) -> bool:
        path = self.path(key)
        existed = path.is_file()
        path.unlink(missing_ok=True)
        return existed

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def list(self, prefix: str) -> Iterator[str]:
        yield from folder_keys(self.root, prefix)

    def copy(self, source: str, target: str) -> None:
        """A byte copy, never a hard link: destroying one key must not touch the other."""
        with self.open(source) as f:
            self.put(target, f.read())


def folder_keys(root: Path, prefix: str) -> Iterator[str]:
    """Keys of the files below ``root`` that start with ``prefix``, sorted; only the folder
    the prefix names is walked, not the whole tree."""
    folder = root / prefix.rpartition("/")[0] if "/" in prefix else root
    if not folder.is_dir():
        return
    found = []
    for path in folder.rglob("*"):
        key = path.relative_to(root).as_posix()
        if key.startswith(prefix) and not key.endswith(".tmp") and path.is_file():
            found.append(key)
    yield from sorted(found)


def _touch(path: Path) -> None:
    """Stamp ``path`` used now, from the fine clock: the kernel's own file times tick
    coarsely (a few ms), so a hit and a write a moment apart would tie and LRU order
    would fall back to the path."""
    now = time.time_ns()
    os.utime(path, ns=(now, now))


def _checked(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"object key {key!r}: relative, '/'-separated, no empty or dot parts")
    return key


class StageFileCache:
    """A read-through cache of stage files in a local folder, bounded in bytes, LRU.

    Files sit under their object key, so the folder can be swept against the stages that
    still exist, and any process using the folder (several workers of one machine may
    share it) evicts for all of them. Recency is the file's mtime, touched on each hit;
    ``put`` trims the oldest files until the folder fits ``max_bytes``. A hit is only used
    after the caller checked its tensor digest.
    """

    def __init__(self, root: Path | str, max_bytes: int) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()

    def path(self, key: str) -> Path:
        return self.root / _checked(key)

    def get(self, key: str) -> bytes | None:
        path = self.path(key)
        try:
            data = path.read_bytes()
            _touch(path)
        except FileNotFoundError:
            return None
        return data

    def put(self, key: str, data: bytes) -> None:
        if len(data) > self.max_bytes:
            return
        with self._lock:
            write_atomically(self.path(key), data)
            _touch(self.path(key))
            self._trim()

    def _trim(self) -> None:
        files = []
        for path in self.root.rglob("*"):
            try:
                if path.is_file() and not path.name.endswith(".tmp"):
                    stat = path.stat()
                    files.append((stat.st_mtime_ns, stat.st_size, path))
            except FileNotFoundError:
                continue  # evicted by another process meanwhile
        total = sum(size for _, size, _ in files)
        for _, size, path in sorted(files):
            if total <= self.max_bytes:
                break
            path.unlink(missing_ok=True)
            total -= size

    def evict(self, key: str) -> bool:
        """Drop one key's bytes; True when this folder held them."""
        path = self.path(key)
        held = path.is_file()
        path.unlink(missing_ok=True)
        return held

    def keys(self) -> list[str]:
        """Every object key this folder holds a copy of."""
        if not self.root.is_dir():
            return []
        return sorted(
            p.relative_to(self.root).as_posix()
            for p in self.root.rglob("*")
            if p.is_file() and not p.name.endswith(".tmp")
        )

    def size(self) -> int:
        return sum(self.path(k).stat().st_size for k in self.keys())
