"""The engine's object-store side of stages: keys, attempts, copies, the cache, digests."""

from __future__ import annotations

import os
import time

import pytest
import torch

from unlearning.artifacts import (
    ArtifactDigestError,
    FolderStore,
    StageArtifact,
    StageFileCache,
    StageKey,
    StageStore,
    artifact_bytes,
    artifact_from_bytes,
)

KEY = StageKey(1, (2, 0))


def _artifact(key: StageKey = KEY, seed: int = 0) -> StageArtifact:
    g = torch.Generator().manual_seed(seed)
    return StageArtifact(
        key, {"x.lora_A.weight": torch.randn(4, 8, generator=g)}, {"r": 1}, {"loss": 0.5}
    )


def test_bytes_round_trip_keeps_tensors_and_provenance():
    artifact = _artifact()
    back = artifact_from_bytes(artifact_bytes(artifact))
    assert back.key == KEY
    assert torch.equal(back.tensors["x.lora_A.weight"], artifact.tensors["x.lora_A.weight"])
    assert (back.recipe, back.metrics) == ({"r": 1}, {"loss": 0.5})
    with pytest.raises(ValueError, match="not a stage artifact"):
        artifact_from_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")


def test_keys_are_relative_and_never_escape_the_folder(tmp_path):
    store = FolderStore(tmp_path)
    for bad in ("/etc/passwd", "a/../../b", "", "a//b", "./a"):
        with pytest.raises(ValueError, match="object key"):
            store.put(bad, b"x")
    store.put("model-1/gen-1/a.bin", b"abc")
    assert (tmp_path / "model-1/gen-1/a.bin").read_bytes() == b"abc"
    assert list(store.list("model-1/")) == ["model-1/gen-1/a.bin"]
    with pytest.raises(FileNotFoundError):
        store.open("model-1/gen-1/missing.bin")


def test_each_attempt_has_its_own_object_and_delete_takes_them_all(tmp_path):
    store = StageStore(FolderStore(tmp_path), "model-3/gen-1")
    store.save(_artifact(), "aaaa")
    store.save(_artifact(seed=1), "bbbb")
    other = StageKey(1, (2, 0, 1))  # a longer prefix that starts the same way
    store.save(_artifact(other))
    assert store.stage_objects(KEY) == [
        "model-3/gen-1/shard-001/stage-2-0.aaaa.safetensors",
        "model-3/gen-1/shard-001/stage-2-0.bbbb.safetensors",
    ]
    assert list(store.keys()) == [KEY, other]
    # A discarded attempt deletes its own object only.
    assert store.delete(KEY, store.object_key(KEY, "bbbb")) == [store.object_key(KEY, "bbbb")]
    assert store.stage_objects(KEY) == [store.object_key(KEY, "aaaa")]
    # Destroying the stage deletes whatever attempt wrote it, and nothing of other stages.
    assert store.delete(KEY) == [store.object_key(KEY, "aaaa")]
    assert store.stage_objects(KEY) == []
    assert store.has(other)


def test_load_checks_the_digest_it_is_given(tmp_path):
    store = StageStore(FolderStore(tmp_path), "m")
    artifact = _artifact()
    store.save(artifact, "a1")
    key = store.object_key(KEY, "a1")
    assert store.load(KEY, artifact.digest, key).digest == artifact.digest
    with pytest.raises(ArtifactDigestError, match="differs"):
        store.load(KEY, "sha256:" + "0" * 64, key)
    # A file holding another stage is refused even without a digest.
    store.objects.put(store.object_key(StageKey(0, (1,))), artifact_bytes(artifact))
    with pytest.raises(ArtifactDigestError, match="holds"):
        store.load(StageKey(0, (1,)))


def test_a_copy_is_independent_of_its_source(tmp_path):
    objects = FolderStore(tmp_path)
    old, new = StageStore(objects, "m/gen-1"), StageStore(objects, "m/gen-2")
    artifact = _artifact()
    old.save(artifact, "a1")
    target = new.copy_from(old, KEY, old.object_key(KEY, "a1"))
    assert target == "m/gen-2/shard-001/stage-2-0.safetensors"
    assert os.stat(tmp_path / target).st_nlink == 1  # a copy, not a hard link
    old.delete(KEY)
    assert new.load(KEY, artifact.digest).digest == artifact.digest


def test_cache_serves_hits_and_a_bad_copy_falls_back_to_the_store(tmp_path):
    cache = StageFileCache(tmp_path / "cache", max_bytes=10**7)
    store = StageStore(FolderStore(tmp_path / "store"), "m", cache)
    artifact = _artifact()
    store.save(artifact)
    key = store.object_key(KEY)
    assert cache.keys() == [key]
    # The store's copy goes: the cache still answers, checked against the digest.
    (tmp_path / "store" / key).unlink()
    assert store.load(KEY, artifact.digest).digest == artifact.digest
    # A tampered cached copy is evicted and the store asked (which has nothing now).
    cache.path(key).write_bytes(artifact_bytes(_artifact(seed=9)))
    with pytest.raises(FileNotFoundError):
        store.load(KEY, artifact.digest)
    assert cache.keys() == []


def test_delete_evicts_the_cache_too(tmp_path):
    cache = StageFileCache(tmp_path / "cache", max_bytes=10**7)
    store = StageStore(FolderStore(tmp_path / "store"), "m", cache)
    store.save(_artifact(), "a1")
    assert cache.keys()
    store.delete(KEY)
    assert cache.keys() == []


def test_cache_keeps_within_its_bound_dropping_the_least_recently_used(tmp_path):
    one = len(artifact_bytes(_artifact()))
    cache = StageFileCache(tmp_path, max_bytes=2 * one + 10)
    for name in ("a", "b"):
        cache.put(f"m/{name}", artifact_bytes(_artifact()))
        time.sleep(0.01)
    assert cache.get("m/a") is not None  # "a" is now the most recently used
    time.sleep(0.01)
    cache.put("m/c", artifact_bytes(_artifact()))
    assert cache.keys() == ["m/a", "m/c"]
    assert cache.size() <= cache.max_bytes
    cache.put("m/huge", b"x" * (3 * one))  # larger than the whole cache: not kept
    assert "m/huge" not in cache.keys()
    assert cache.evict("m/a")
    assert not cache.evict("m/a")
