from __future__ import annotations

import pytest

from unlearning.backbones import build_base
from unlearning.layers import (
    block_index,
    inspect_model,
    is_head_param,
    is_lora_param,
    layer_groups,
)


def test_groups_count_from_the_top():
    assert layer_groups(6, 3) == ((4, 5), (2, 3), (0, 1))
    assert layer_groups(6, 6) == ((5,), (4,), (3,), (2,), (1,), (0,))


def test_uneven_blocks_give_upper_groups_one_more():
    assert layer_groups(7, 3) == ((4, 5, 6), (2, 3), (0, 1))
    groups = layer_groups(12, 5)
    assert sorted(b for g in groups for b in g) == list(range(12))
    assert [len(g) for g in groups] == [3, 3, 2, 2, 2]


@pytest.mark.parametrize(("blocks", "groups"), [(6, 0), (6, 7), (0, 1)])
def test_bad_group_counts_are_refused(blocks, groups):
    with pytest.raises(ValueError, match="num_groups"):
        layer_groups(blocks, groups)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("base_model.model.bert.encoder.layer.1.attention.self.query.lora_A.default.weight", 1),
        ("base_model.model.bert.encoder.layer.10.attention.self.query.lora_A.default.weight", 10),
        ("bert.encoder.layer.11.output.dense.weight", 11),
        ("bert.embeddings.word_embeddings.weight", None),
        ("bert.pooler.dense.weight", None),
        ("base_model.model.classifier.weight", None),
        # a name that merely contains the container as a substring is not in the stack
        ("bert.encoder.layer_norm.1.weight", None),
    ],
)
def test_block_index_is_parsed_not_matched(name, expected):
    assert block_index(name, "bert.encoder.layer") == expected


def test_lora_and_head_names_are_exact_components():
    assert is_lora_param(
        "base_model.model.bert.encoder.layer.0.attention.self.query.lora_B.default.weight"
    )
    assert not is_lora_param("bert.encoder.layer.0.attention.self.query.weight")
    assert not is_lora_param("my_lora_Athing.weight")
    assert is_head_param("base_model.model.classifier.bias", "classifier")
    assert not is_head_param("base_model.model.bert.classifier_like.weight", "classifier")


@pytest.mark.parametrize(
    ("backbone", "path", "targets", "head"),
    [
        ("tiny-bert", "bert.encoder.layer", ("query", "value"), "classifier"),
        ("tiny-gpt2", "transformer.h", ("c_attn",), "score"),
        ("tiny-llama", "model.layers", ("q_proj", "v_proj"), "score"),
        ("tiny-vit", "vit.layers", ("q_proj", "v_proj"), "classifier"),
    ],
)
def test_anatomy_of_each_family(backbone, path, targets, head):
    anatomy = inspect_model(build_base(backbone, 3))
    assert anatomy.block_path == path
    assert anatomy.lora_targets == targets
    assert anatomy.head == head
    assert anatomy.num_blocks == 4


def test_twelve_block_groups_select_by_index(host_factory):
    # With substring matching "layer.1" would also select blocks 10 and 11.
    host = host_factory("tiny-bert-12", 12)
    assert host.groups[10] == (1,)
    names = host.group_param_names[11]
    assert names, "group 11 must hold block 1's LoRA"
    assert {block_index(n, host.anatomy.block_path) for n in names} == {1}
    per_block = len(host.group_param_names[1])
    assert len(names) == per_block == 4  # query/value × A/B
