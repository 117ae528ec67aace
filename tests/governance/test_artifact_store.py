"""The artifact store (governance/artifacts.py) against a real S3-compatible server
(SeaweedFS, tests/s3.py) and, where the behaviour is the same, against the file-system
backend: keys in, bytes out, deletes that leave nothing behind (every version of a
versioned bucket), copies that are objects of their own, and the read-through cache that
checks every read against the stage's tensor digest."""

from __future__ import annotations

import uuid

import pytest
import torch
from botocore.exceptions import ClientError

from governance.artifacts import (
    DjangoArtifactStore,
    artifact_objects,
    stage_bytes_exist,
    stage_cache,
    stage_cache_reset,
    stage_store,
)
from governance.models import Shard, Stage
from tests.factories import UnlearningModelFactory
from unlearning.artifacts import (
    ArtifactDigestError,
    StageArtifact,
    StageFileCache,
    StageKey,
    artifact_bytes,
)


@pytest.fixture(params=["folder", "s3"])
def objects(request, settings, tmp_path) -> DjangoArtifactStore:
    """The deployment's store on either backend, empty."""
    if request.param == "s3":
        request.getfixturevalue("s3_artifacts")
    else:
        settings.ARTIFACT_ROOT = tmp_path / "artifacts"
        stage_cache_reset()
    store = artifact_objects()
    assert store.is_s3 == (request.param == "s3")
    return store


def _read(objects: DjangoArtifactStore, key: str) -> bytes:
    with objects.open(key) as f:
        return f.read()


def _artifact(shard: int, prefix: tuple[int, ...], value: float = 1.0) -> StageArtifact:
    tensors = {"lora_A": torch.full((4, 8), value), "head.weight": torch.arange(6.0) * value}
    return StageArtifact(StageKey(shard, prefix), tensors, recipe={"seed": 1})


def test_put_open_exists_and_overwrite(objects):
    key = "model-1/gen-1/shard-000/stage-0.safetensors"
    assert not objects.exists(key)
    objects.put(key, b"first")
    assert objects.exists(key)
    assert _read(objects, key) == b"first"
    objects.put(key, b"second")  # same key, never a renamed sibling
    assert _read(objects, key) == b"second"
    assert list(objects.list("model-1/")) == [key]


def test_open_of_a_missing_key_is_file_not_found(objects):
    with pytest.raises(FileNotFoundError, match="no object"):
        objects.open("model-1/gen-1/shard-000/stage-9.safetensors")


def test_delete_says_whether_something_existed(objects):
    key = "model-1/gen-1/shard-000/stage-0.safetensors"
    objects.put(key, b"bytes")
    assert objects.delete(key) is True
    assert not objects.exists(key)
    with pytest.raises(FileNotFoundError):
        objects.open(key)
    assert objects.delete(key) is False


def test_list_by_prefix_is_sorted_and_stays_inside_the_prefix(objects):
    keys = [
        "model-2/gen-1/shard-001/stage-1.safetensors",
        "model-2/gen-1/shard-000/stage-1-0.safetensors",
        "model-2/gen-1/shard-000/stage-1.safetensors",
        "model-2/gen-2/shard-000/stage-1.safetensors",
        "model-20/gen-1/shard-000/stage-1.safetensors",
    ]
    for key in keys:
        objects.put(key, key.encode())
    assert list(objects.list("model-2/gen-1/")) == sorted(keys[:3])
    assert list(objects.list("model-2/")) == sorted(keys[:4])
    assert list(objects.list("")) == sorted(keys)
    assert list(objects.list("model-3/")) == []


def test_copy_is_an_object_of_its_own(objects):
    source = "model-1/gen-1/shard-000/stage-0.safetensors"
    target = "model-1/gen-2/shard-000/stage-0.safetensors"
    data = bytes(range(256)) * 400  # more than one small chunk
    objects.put(source, data)
    objects.copy(source, target)
    assert _read(objects, target) == data
    assert objects.delete(source)
    assert _read(objects, target) == data  # deleting one leaves the other
    objects.put(source, b"again")
    assert objects.delete(target)
    assert _read(objects, source) == b"again"


def test_stage_bytes_exist_is_empty_once_the_stage_is_deleted(objects, db):
    model = UnlearningModelFactory(generation=1)
    shard = Shard.objects.create(model=model, generation=1, index=0)
    store = stage_store(model.pk, 1)
    artifact = _artifact(0, (1, 0))
    digest = store.save(artifact)
    stage = Stage.objects.create(
        shard=shard,
        prefix="1-0",
        position=2,
        state=Stage.State.TRAINED,
        artifact_key=store.object_key(artifact.key),
        tensor_digest=digest,
    )
    store.save(artifact)  # written twice: two versions in a versioned bucket
    assert stage_bytes_exist(stage)
    assert store.delete(artifact.key) == [stage.artifact_key]
    assert stage_bytes_exist(stage) == []


# --- S3 only: versions ------------------------------------------------------------------


def _versions_listed(s3_artifacts, key: str) -> list[str]:
    client = s3_artifacts.client()
    full = s3_artifacts.bucket_key(key)
    page = client.list_object_versions(Bucket=s3_artifacts.bucket, Prefix=full)
    return [
        item["VersionId"]
        for item in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]
        if item["Key"] == full
    ]


def _retrievable(client, bucket: str, key: str, version: str) -> bool:
    try:
        client.get_object(Bucket=bucket, Key=key, VersionId=version)["Body"].read()
    except ClientError as exc:
        if exc.response["ResponseMetadata"]["HTTPStatusCode"] not in (400, 404):
            raise
        return False
    return True


def test_delete_in_a_versioned_bucket_deletes_every_version(s3_artifacts):
    objects = artifact_objects()
    key = "model-1/gen-1/shard-000/stage-0.safetensors"
    objects.put(key, b"one")
    objects.put(key, b"two")
    versions = _versions_listed(s3_artifacts, key)
    assert len(versions) == 2, versions  # the bucket really keeps versions
    assert len(objects.versions(key)) == 2
    client = s3_artifacts.client()
    full = s3_artifacts.bucket_key(key)
    assert all(_retrievable(client, s3_artifacts.bucket, full, v) for v in versions)
    assert objects.delete(key) is True
    assert objects.versions(key) == []
    assert _versions_listed(s3_artifacts, key) == []  # no delete marker either
    assert not any(_retrievable(client, s3_artifacts.bucket, full, v) for v in versions)
    assert objects.delete(key) is False


def test_a_plain_delete_in_a_versioned_bucket_would_leave_the_bytes(s3_artifacts):
    """Why delete() goes version by version: S3's own DELETE only adds a marker."""
    client = s3_artifacts.client()
    full = s3_artifacts.bucket_key("model-1/gen-1/shard-000/stage-0.safetensors")
    client.put_object(Bucket=s3_artifacts.bucket, Key=full, Body=b"kept")
    (version,) = _versions_listed(s3_artifacts, "model-1/gen-1/shard-000/stage-0.safetensors")
    client.delete_object(Bucket=s3_artifacts.bucket, Key=full)
    assert _retrievable(client, s3_artifacts.bucket, full, version)


@pytest.mark.parametrize("s3_artifacts", ["plain"], indirect=True)
def test_delete_in_a_plain_bucket(s3_artifacts):
    objects = artifact_objects()
    key = "model-1/gen-1/shard-000/stage-0.safetensors"
    objects.put(key, b"one")
    assert objects.versions(key) == [{"VersionId": "null"}]  # the one copy there is
    assert objects.delete(key) is True
    assert objects.versions(key) == []
    assert not objects.exists(key)


def test_an_object_from_before_versioning_is_deleted_too(s3_server):
    """An object written while the bucket was unversioned keeps version "null" when
    versioning is turned on later; deleting the key must remove it as well."""
    from django.core.files.storage import storages

    from governance.setting_values import s3_artifacts_storage

    client = s3_server.client()
    bucket = f"lethe-late-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket)
    try:
        client.put_object(Bucket=bucket, Key="p/k", Body=b"before versioning")
        client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        client.put_object(Bucket=bucket, Key="p/k", Body=b"after")
        backend = s3_artifacts_storage(
            bucket=bucket, endpoint_url=s3_server.endpoint_url, region=None, prefix="p"
        )
        backend["OPTIONS"] |= {
            "access_key": s3_server.access_key,
            "secret_key": s3_server.secret_key,
        }
        objects = DjangoArtifactStore(storages.create_storage(backend))
        assert {v["VersionId"] for v in objects.versions("k")} >= {"null"}
        assert objects.delete("k") is True
        assert objects.versions("k") == []
        assert not _retrievable(client, bucket, "p/k", "null")
    finally:
        client.delete_bucket(Bucket=bucket)


# --- The read-through cache over S3 -----------------------------------------------------


def test_load_fills_the_cache_and_a_tampered_copy_is_evicted_and_read_again(s3_artifacts):
    store = stage_store(1, 1)
    artifact = _artifact(0, (2,))
    digest = store.save(artifact)
    cache = stage_cache()
    assert cache is not None
    assert cache.root == s3_artifacts.cache_dir
    object_key = store.object_key(artifact.key)
    cache.evict(object_key)
    loaded = store.load(artifact.key, digest)
    assert loaded.digest == digest
    cached = cache.path(object_key)
    assert cached.read_bytes() == artifact_bytes(artifact)  # the load filled the cache
    # Same file, other tensors: parses, names the right stage, fails the digest.
    cached.write_bytes(artifact_bytes(_artifact(0, (2,), value=7.0)))
    again = store.load(artifact.key, digest)
    assert again.digest == digest
    assert torch.equal(again.tensors["lora_A"], artifact.tensors["lora_A"])
    assert cached.read_bytes() == artifact_bytes(artifact)  # re-read from the store
    cached.write_bytes(b"not a safetensors file")
    assert store.load(artifact.key, digest).digest == digest


def test_a_tampered_object_in_the_store_is_refused(s3_artifacts):
    store = stage_store(1, 1)
    artifact = _artifact(0, (2,))
    digest = store.save(artifact)
    object_key = store.object_key(artifact.key)
    s3_artifacts.client().put_object(
        Bucket=s3_artifacts.bucket,
        Key=s3_artifacts.bucket_key(object_key),
        Body=artifact_bytes(_artifact(0, (2,), value=3.0)),
    )
    cache = stage_cache()
    assert cache is not None
    cache.evict(object_key)
    with pytest.raises(ArtifactDigestError, match="tensor digest"):
        store.load(artifact.key, digest)
    assert not cache.path(object_key).exists()  # refused bytes are never cached
    # A genuine copy in the cache still serves; the store's bytes are not needed then.
    cache.put(object_key, artifact_bytes(artifact))
    assert store.load(artifact.key, digest).digest == digest


def test_the_cache_trims_least_recently_used_files_to_its_bound(s3_artifacts, settings):
    sizes = len(artifact_bytes(_artifact(0, (0,))))
    settings.LETHE_ARTIFACT_CACHE_MAX_BYTES = 3 * sizes
    stage_cache_reset()
    store = stage_store(1, 1)
    cache = stage_cache()
    assert isinstance(cache, StageFileCache)
    assert cache.max_bytes == 3 * sizes
    artifacts = [_artifact(0, (i,), value=float(i)) for i in range(5)]
    digests = [store.save(a) for a in artifacts]
    assert cache.size() <= cache.max_bytes
    for key in cache.keys():  # start over with nothing cached
        cache.evict(key)
    order = [0, 1, 2, 0, 3, 4]  # 0 is used again before 3 and 4 arrive: 1 and 2 go
    for i in order:
        assert store.load(artifacts[i].key, digests[i]).digest == digests[i]
        assert cache.size() <= cache.max_bytes
    assert cache.keys() == sorted(store.object_key(artifacts[i].key) for i in (0, 3, 4))
