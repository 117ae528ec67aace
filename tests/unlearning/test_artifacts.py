from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from unlearning.artifacts import (
    LocalArtifactStore,
    StageArtifact,
    StageKey,
    load_artifact,
    save_artifact,
    tensor_digest,
)


def _tensors():
    g = torch.Generator().manual_seed(0)
    return {"b.lora_A.weight": torch.randn(4, 8, generator=g), "a.head.bias": torch.zeros(3)}


def test_digest_ignores_file_metadata_and_order(tmp_path):
    t = _tensors()
    save_file(t, tmp_path / "x.safetensors", metadata={"a": "1", "b": "2"})
    save_file(dict(reversed(t.items())), tmp_path / "y.safetensors", metadata={"c": "3"})
    assert (tmp_path / "x.safetensors").read_bytes() != (tmp_path / "y.safetensors").read_bytes()
    from safetensors.torch import load_file

    assert tensor_digest(load_file(tmp_path / "x.safetensors")) == tensor_digest(
        load_file(tmp_path / "y.safetensors")
    )


def test_digest_sees_one_ulp_and_dtype_and_name():
    t = _tensors()
    base = tensor_digest(t)
    bumped = dict(t)
    bumped["b.lora_A.weight"] = t["b.lora_A.weight"].clone()
    bumped["b.lora_A.weight"][0, 0] = torch.nextafter(
        bumped["b.lora_A.weight"][0, 0], torch.tensor(float("inf"))
    )
    assert tensor_digest(bumped) != base
    assert tensor_digest({**t, "a.head.bias": torch.zeros(3, dtype=torch.float64)}) != base
    assert (
        tensor_digest({"renamed": t["a.head.bias"], "b.lora_A.weight": t["b.lora_A.weight"]})
        != base
    )


def test_round_trip_keeps_tensors_recipe_and_key(tmp_path):
    artifact = StageArtifact(StageKey(2, (1, 0)), _tensors(), {"seed": 7}, {"final_loss": 0.5})
    digest = save_artifact(artifact, tmp_path / "s.safetensors")
    loaded = load_artifact(tmp_path / "s.safetensors")
    assert loaded.key == StageKey(2, (1, 0))
    assert loaded.digest == digest == artifact.digest
    assert loaded.recipe == {"seed": 7}
    assert all(torch.equal(loaded.tensors[n], artifact.tensors[n]) for n in artifact.tensors)


def test_a_failed_save_leaves_nothing_behind(tmp_path):
    bad = StageArtifact(StageKey(0, (0,)), {"x": torch.zeros(2)}, {"not json": object()})
    with pytest.raises(TypeError):
        save_artifact(bad, tmp_path / "s.safetensors")
    assert list(tmp_path.iterdir()) == []


def test_store_lists_and_destroys_stages(tmp_path):
    store = LocalArtifactStore(tmp_path)
    keys = [StageKey(0, (1,)), StageKey(0, (1, 0)), StageKey(1, (0,))]
    for key in keys:
        store.save(StageArtifact(key, _tensors()))
    assert sorted(store.keys()) == sorted(keys)
    assert store.delete(StageKey(0, (1, 0))) == ["shard-000/stage-1-0.safetensors"]
    assert not store.path(StageKey(0, (1, 0))).exists()
    assert store.delete(StageKey(0, (1, 0))) == []
    assert sorted(store.keys()) == sorted([keys[0], keys[2]])


def test_key_paths_are_unambiguous():
    assert StageKey(0, (1, 12)).slug() != StageKey(0, (11, 2)).slug()
    assert StageKey(3, (2, 0, 1)).position == 3
    assert StageKey(3, (2, 0, 1)).parent == StageKey(3, (2, 0))
    assert StageKey(3, (2,)).parent is None
    assert json.dumps(list(StageKey(0, (1,)).prefix)) == "[1]"
