"""Local checkpoint folders: the family comes from config.json, never from an assumption."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from unlearning.assembly import AdapterHost, LoraSettings
from unlearning.backbones import (
    backbone_info,
    build_base,
    default_lora_targets,
    load_tokenizer,
    make_collator,
    minilm_path,
    task_check,
)
from unlearning.checkpoints import checkpoint_family
from unlearning.data import Example

_SMALL = {"num_attention_heads": 2, "intermediate_size": 32}


def _save(model, folder, *, tokenizer: bool = True):
    model.save_pretrained(folder)
    if tokenizer:
        for name in ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
            if (minilm_path() / name).exists():
                shutil.copy(minilm_path() / name, folder / name)
    return str(folder)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Tiny BERT, GPT-2, Llama and ViT checkpoints saved with save_pretrained."""
    from transformers import (
        BertConfig,
        BertForSequenceClassification,
        GPT2Config,
        GPT2LMHeadModel,
        LlamaConfig,
        LlamaForCausalLM,
        ViTConfig,
        ViTForImageClassification,
    )

    root = tmp_path_factory.mktemp("checkpoints")
    torch.manual_seed(0)
    vocab = 30522
    models = {
        "bert": BertForSequenceClassification(
            BertConfig(vocab_size=vocab, hidden_size=16, num_hidden_layers=2, **_SMALL)
        ),
        "gpt2": GPT2LMHeadModel(GPT2Config(vocab_size=vocab, n_embd=16, n_layer=2, n_head=2)),
        "llama": LlamaForCausalLM(
            LlamaConfig(vocab_size=vocab, hidden_size=16, num_hidden_layers=2, **_SMALL)
        ),
        "vit": ViTForImageClassification(
            ViTConfig(image_size=16, patch_size=4, hidden_size=16, num_hidden_layers=2, **_SMALL)
        ),
    }
    out = {}
    for name, model in models.items():
        (root / name).mkdir()
        out[name] = _save(model, root / name, tokenizer=name != "vit")
    return out


@pytest.mark.parametrize(
    ("name", "family", "modality"),
    [
        ("bert", "encoder", "text"),
        ("gpt2", "decoder", "text"),
        ("llama", "decoder", "text"),
        ("vit", "vision", "image"),
    ],
)
def test_family_is_read_from_the_config(folders, name, family, modality):
    info = backbone_info(folders[name])
    assert (info.family, info.modality) == (family, modality)


def test_architectures_decide_before_model_type(tmp_path):
    (tmp_path / "config.json").write_text(
        json.dumps({"model_type": "something-new", "architectures": ["NewThingForCausalLM"]})
    )
    assert checkpoint_family(tmp_path) == "decoder"
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "is_decoder": True}))
    assert checkpoint_family(tmp_path) == "decoder"


@pytest.mark.parametrize(
    "content",
    [None, "{not json", json.dumps([1, 2]), json.dumps({"model_type": "whisper"})],
    ids=["missing", "unreadable", "not-an-object", "unknown-family"],
)
def test_folders_that_fit_no_family_are_refused(tmp_path, content):
    if content is not None:
        (tmp_path / "config.json").write_text(content)
    with pytest.raises(ValueError, match=r"^base_model: "):
        backbone_info(str(tmp_path))


@pytest.mark.parametrize(
    ("name", "task", "ok"),
    [
        ("bert", "classification", True),
        ("gpt2", "classification", True),
        ("bert", "generation", False),
        ("llama", "generation", True),
        ("vit", "generation", False),
        ("vit", "image_classification", True),
        ("gpt2", "image_classification", False),
        ("vit", "classification", False),
        ("llama", "image_classification", False),
    ],
)
def test_task_check(folders, name, task, ok):
    if ok:
        task_check(folders[name], task)
    else:
        with pytest.raises(ValueError, match=r"^base_model: "):
            task_check(folders[name], task)


def test_unknown_task_is_named():
    with pytest.raises(ValueError, match=r"^task: "):
        task_check("tiny-gpt2", "translation")


@pytest.mark.parametrize(
    ("name", "task", "targets"),
    [
        ("bert", "classification", ("query", "value")),
        ("gpt2", "classification", ("c_attn",)),
        ("gpt2", "generation", ("c_attn", "c_proj", "c_fc")),
        ("llama", "classification", ("q_proj", "v_proj")),
        (
            "llama",
            "generation",
            ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
        ),
        ("vit", "image_classification", ("q_proj", "v_proj")),
    ],
)
def test_default_lora_targets(folders, name, task, targets):
    assert default_lora_targets(folders[name], task) == targets


def test_tiny_defaults_keep_todays_classification_targets():
    assert default_lora_targets("tiny-bert", "classification") == ("query", "value")
    assert default_lora_targets("tiny-gpt2", "classification") == ("c_attn",)
    assert default_lora_targets("tiny-llama", "classification") == ("q_proj", "v_proj")
    assert default_lora_targets("minilm", "classification") == ("query", "value")
    # A vision backbone under "classification" builds an image classifier, as it always did.
    assert default_lora_targets("tiny-vit", "classification") == ("q_proj", "v_proj")
    with pytest.raises(ValueError, match=r"^base_model: "):
        default_lora_targets("tiny-bert", "generation")


@pytest.mark.parametrize("name", ["gpt2", "llama"])
def test_local_decoder_trains_for_generation(folders, name):
    """A decoder checkpoint becomes a causal LM with no head; its stage holds LoRA only."""
    from unlearning.artifacts import StageKey
    from unlearning.training import TrainSettings, train_stage

    path = folders[name]
    base = build_base(path, 0, task="generation")
    assert type(base).__name__.endswith(("ForCausalLM", "LMHeadModel"))
    targets = default_lora_targets(path, "generation")
    host = AdapterHost(base, num_groups=2, lora=LoraSettings(rank=2, alpha=4, targets=targets))
    assert host.head_param_names == []
    collate = make_collator(path, task="generation", max_length=32)
    artifact = train_stage(
        host,
        key=StageKey(0, (0,)),
        parents=[],
        examples=[Example(f"k{i}", 0, f"question {i}", f"answer {i}") for i in range(4)],
        collate=collate,
        settings=TrainSettings(epochs=1, batch_size=2),
        model_seed=1,
    )
    assert set(artifact.tensors) == set(host.group_param_names[1])
    assert {n.split(".")[-4] for n in artifact.tensors} == set(targets)
    assert load_tokenizer(path).vocab_size == 30522


def test_local_vision_checkpoint_builds_an_image_classifier(folders):
    model = build_base(folders["vit"], 3, task="image_classification")
    assert type(model).__name__ == "ViTForImageClassification"
    assert model.config.num_labels == 3
    logits = model(pixel_values=torch.zeros(1, 3, 16, 16)).logits
    assert logits.shape == (1, 3)
