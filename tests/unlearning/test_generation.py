"""Generation on tiny decoders: I1 isolation, exact assembly, I4 replay, deterministic decoding.

Every check is against an independent computation: a fresh host, a replay from the base,
a full recompute without KV cache, or another process.
"""

from __future__ import annotations

import copy
import json
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from unlearning.artifacts import LocalArtifactStore, StageKey
from unlearning.assembly import AdapterHost, LoraSettings
from unlearning.backbones import build_base, default_lora_targets, load_tokenizer, make_collator
from unlearning.data import (
    IGNORE_INDEX,
    Example,
    GenerationCollator,
    fit_sequence,
    prompt_ids,
    prompt_text,
)
from unlearning.ensemble import NoServingShardError, ShardChoice, StageCache
from unlearning.generation import EnsembleGenerator
from unlearning.replay import replay_prefix
from unlearning.sample_instructions import instruction_examples
from unlearning.training import TrainSettings, train_stage

REPO = Path(__file__).resolve().parents[2]
DECODERS = ["tiny-gpt2", "tiny-llama"]
SETTINGS = TrainSettings(epochs=1, batch_size=4, learning_rate=1e-2, weight_decay=0.01)
SEQUENCES = {0: (0, 1, 2), 1: (2, 0)}  # shard -> its one sequence
PROMPTS = ["i forgot my password please", (("user", "hello"), ("user", "where is my parcel"))]
MAX_LENGTH = 48


def _slices(shard: int) -> dict[int, list[Example]]:
    return {s: instruction_examples(6, 10 * shard + s, prefix=f"d{shard}s{s}-") for s in range(3)}


def _host(backbone: str) -> AdapterHost:
    lora = LoraSettings(rank=4, alpha=8, dropout=0.1, targets=_targets(backbone))
    return AdapterHost(build_base(backbone, 0, task="generation"), num_groups=3, lora=lora)


def _targets(backbone: str) -> tuple[str, ...]:
    return default_lora_targets(backbone, "generation")


def _collate(backbone: str):
    return make_collator(backbone, task="generation", max_length=MAX_LENGTH)


def _probe(backbone: str) -> dict[str, torch.Tensor]:
    batch = _collate(backbone)(instruction_examples(6, 99, prefix="probe"))
    batch.pop("labels")
    return batch


def _logits(host: AdapterHost, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.inference_mode():
        return host.model(**batch).logits.clone()


def _snapshot(host: AdapterHost) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in host.model.named_parameters()}


@pytest.fixture(scope="module", params=DECODERS)
def trained(request, tmp_path_factory):
    """Both shards trained stage by stage, recording what changed and the logits after."""
    backbone = request.param
    store = LocalArtifactStore(tmp_path_factory.mktemp(f"gen-{backbone}"))
    host, probe = _host(backbone), _probe(backbone)
    changed: dict[StageKey, set[str]] = {}
    after: dict[StageKey, torch.Tensor] = {}
    for shard, order in SEQUENCES.items():
        slices, parents = _slices(shard), []
        for depth in range(1, len(order) + 1):
            key = StageKey(shard, order[:depth])
            before = _snapshot(host)
            artifact = train_stage(
                host,
                key=key,
                parents=parents,
                examples=[e for s in key.prefix for e in slices[s]],
                collate=_collate(backbone),
                settings=SETTINGS,
                model_seed=4,
            )
            now = _snapshot(host)
            changed[key] = {n for n in before if not torch.equal(before[n], now[n])}
            after[key] = _logits(host, probe)
            store.save(artifact)
            parents.append(artifact)
    return {"backbone": backbone, "store": store, "host": host, "changed": changed, "after": after}


def _stages(store, key: StageKey):
    return [store.load(StageKey(key.shard, key.prefix[:d])) for d in range(1, key.position + 1)]


def _choices() -> list[ShardChoice]:
    return [
        ShardChoice(shard, 0, tuple(StageKey(shard, order[:d]) for d in range(1, len(order) + 1)))
        for shard, order in SEQUENCES.items()
    ]


def _generator(backbone: str, store, host: AdapterHost | None = None, choices=None):
    return EnsembleGenerator(
        host or _host(backbone),
        _choices() if choices is None else choices,
        StageCache(store.load),
        load_tokenizer(backbone),
        max_length=MAX_LENGTH,
    )


def test_each_stage_changes_only_its_groups_lora(trained):
    host = trained["host"]
    assert host.head_param_names == [], "a causal LM has no trained head"
    for key, changed in trained["changed"].items():
        allowed = set(host.group_param_names[key.position])
        assert changed <= allowed, f"{key.slug()} changed {sorted(changed - allowed)[:3]}"
        lora_b = {n for n in allowed if ".lora_B." in n}
        assert lora_b <= changed, f"{key.slug()}: its own LoRA B must have been trained"


def test_stage_holds_only_its_groups_lora_and_records_the_prompt_rules(trained):
    host, store = trained["host"], trained["store"]
    for key in trained["changed"]:
        stage = store.load(key)
        assert set(stage.tensors) == set(host.group_param_names[key.position])
        assert stage.recipe["generation"]["truncation"].startswith("keep response+eos")
        # Not the classic attention-only targets, so the recipe names them.
        assert stage.recipe["lora"]["targets"] == list(_targets(trained["backbone"]))
        assert {n.split(".")[-4] for n in stage.tensors} == set(_targets(trained["backbone"]))


def test_cold_assembly_reproduces_every_stage(trained):
    probe = _probe(trained["backbone"])
    for key, expected in trained["after"].items():
        fresh = _host(trained["backbone"])
        fresh.activate(_stages(trained["store"], key))
        assert torch.equal(_logits(fresh, probe), expected), key.slug()


def test_hot_switching_reproduces_every_stage_in_any_order(trained):
    probe = _probe(trained["backbone"])
    keys = list(trained["after"]) * 2
    random.Random(5).shuffle(keys)
    host = _host(trained["backbone"])
    for key in keys:
        host.activate(_stages(trained["store"], key))
        assert torch.equal(_logits(host, probe), trained["after"][key]), key.slug()
    host.wipe()
    assert all(torch.count_nonzero(p) == 0 for _, p in host.parameters_of(1))


def test_replay_reproduces_the_stages_bit_for_bit(trained):
    backbone, store = trained["backbone"], trained["store"]
    replayed = replay_prefix(
        _host(backbone),
        shard=1,
        prefix=SEQUENCES[1],
        slices=_slices(1),
        collate=_collate(backbone),
        settings=SETTINGS,
        model_seed=4,
    )
    for stage in replayed:
        recorded = store.load(stage.key).tensors
        assert recorded.keys() == stage.tensors.keys()
        assert all(torch.equal(recorded[n], stage.tensors[n]) for n in recorded)


def test_greedy_generation_is_deterministic_and_per_prompt(trained):
    backbone, store = trained["backbone"], trained["store"]
    first = _generator(backbone, store, trained["host"]).generate(PROMPTS, max_new_tokens=6)
    again = _generator(backbone, store).generate(PROMPTS, max_new_tokens=6)
    alone = _generator(backbone, store).generate(PROMPTS[1:], max_new_tokens=6)
    assert first == again
    assert alone == first[1:], "an output must not depend on the other prompts"
    assert all(len(g.tokens) <= 6 for g in first)


def test_sampling_follows_the_seed(trained):
    backbone, store = trained["backbone"], trained["store"]
    options = {"max_new_tokens": 8, "temperature": 1.5, "top_p": 0.95}
    a = _generator(backbone, store).generate(PROMPTS, seed=7, **options)
    b = _generator(backbone, store).generate(PROMPTS, seed=7, **options)
    c = _generator(backbone, store).generate(PROMPTS, seed=8, **options)
    assert a == b
    assert [g.tokens for g in a] != [g.tokens for g in c]


@pytest.mark.parametrize("temperature", [0.0, 0.7])
def test_ensemble_distribution_is_the_mean_of_independent_shards(trained, temperature):
    """Each step's distribution equals the mean over shards of a full recompute (no cache)."""
    backbone, store = trained["backbone"], trained["store"]
    seen: list[torch.Tensor] = []
    [out] = _generator(backbone, store).generate(
        PROMPTS[:1],
        max_new_tokens=5,
        temperature=temperature,
        seed=3,
        on_step=lambda i, step, dist: seen.append(dist),
    )
    prompt = prompt_ids(load_tokenizer(backbone), PROMPTS[0])
    independent = _host(backbone)
    for step, dist in enumerate(seen):
        total = None
        for choice in _choices():
            independent.activate([store.load(k) for k in choice.stages])
            ids = torch.tensor([prompt + out.tokens[:step]])
            with torch.inference_mode():
                logits = independent.model(input_ids=ids, use_cache=False).logits[0, -1].float()
            probs = (logits / temperature if temperature else logits).softmax(dim=-1)
            total = probs if total is None else total + probs
        expected = total / len(SEQUENCES)
        if step == 0:  # the prompt pass has the same shapes as the recompute: same bits
            assert torch.equal(dist, expected)
        # Later steps read the KV cache: the same arithmetic in other kernel shapes.
        torch.testing.assert_close(dist, expected, rtol=0, atol=1e-6)
        if temperature == 0 and step < len(out.tokens):
            assert out.tokens[step] == int(expected.argmax())
    assert len(seen) == len(out.tokens) + (len(out.tokens) < 5)  # + the step that chose eos


def test_no_serving_shard_refuses_to_generate(trained):
    generator = _generator(trained["backbone"], trained["store"], choices=[])
    with pytest.raises(NoServingShardError):
        generator.generate(PROMPTS)


GENERATE_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    import unlearning
    import torch
    from tests.unlearning.test_generation import PROMPTS, _generator
    from unlearning.artifacts import LocalArtifactStore
    backbone, folder = sys.argv[1], sys.argv[2]
    out = _generator(backbone, LocalArtifactStore(Path(folder))).generate(
        PROMPTS, max_new_tokens=8, temperature=1.0, top_p=0.9, seed=11)
    print(json.dumps([g.tokens for g in out]))
    """
)


def test_generation_is_identical_in_another_process(trained):
    backbone, store = trained["backbone"], trained["store"]
    here = _generator(backbone, store).generate(
        PROMPTS, max_new_tokens=8, temperature=1.0, top_p=0.9, seed=11
    )
    result = subprocess.run(  # the test's own interpreter and code, no shell
        [sys.executable, "-c", GENERATE_SCRIPT, backbone, str(store.root)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.splitlines()[-1]) == [g.tokens for g in here]


def test_collator_labels_only_the_response_and_its_eos():
    tokenizer = load_tokenizer("tiny-gpt2")
    collate = GenerationCollator(tokenizer, max_length=64)
    examples = [Example("a", 0, "where is my parcel", "track it"), Example("b", 0, "hi", "ok")]
    batch = collate(examples)
    for row, example in enumerate(examples):
        prompt = prompt_ids(tokenizer, example.payload)
        response = tokenizer(example.target, add_special_tokens=False)["input_ids"]
        n = len(prompt) + len(response) + 1
        assert batch["input_ids"][row, :n].tolist() == prompt + response + [tokenizer.sep_token_id]
        assert batch["labels"][row, : len(prompt)].eq(IGNORE_INDEX).all()
        assert batch["labels"][row, len(prompt) : n].tolist() == [*response, 102]
        assert batch["labels"][row, n:].eq(IGNORE_INDEX).all()
        assert batch["attention_mask"][row].sum() == n
    assert prompt_text(tokenizer, "hi") == "### User:\nhi\n### Assistant:\n"


@pytest.mark.parametrize("backbone", DECODERS)
def test_the_loss_from_kept_positions_is_the_loss_over_every_position(backbone):
    """Training asks only for the logits the loss reads; the loss must not change."""
    from unlearning.generation import causal_loss, causal_loss_at, loss_positions

    model = build_base(backbone, 2, task="generation")
    collate = GenerationCollator(load_tokenizer(backbone), max_length=64)
    batch = collate(instruction_examples(6, seed=3))
    labels = batch.pop("labels")
    positions = loss_positions(labels)
    with torch.no_grad():
        full = model(**batch).logits
        kept = model(**batch, logits_to_keep=positions).logits

    assert 0 < len(positions) < labels.shape[1] - 1  # some prompt positions are skipped
    assert kept.shape[1] == len(positions)
    torch.testing.assert_close(kept, full[:, positions], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(
        causal_loss_at(kept, labels, positions), causal_loss(full, labels), rtol=1e-5, atol=1e-6
    )


def test_truncation_keeps_the_response_and_cuts_the_prompt_from_the_left():
    prompt, response = list(range(10, 30)), [1, 2, 3]
    assert fit_sequence(prompt, response, 9, 8) == ([26, 27, 28, 29], [1, 2, 3, 9])
    assert fit_sequence(prompt, list(range(50, 60)), 9, 6) == ([29], [50, 51, 52, 53, 54])
    batch = GenerationCollator(load_tokenizer("tiny-gpt2"), max_length=8)(
        [Example("a", 0, "a very long question " * 5, "short answer")]
    )
    assert batch["input_ids"].shape == (1, 8)


def test_chat_template_and_missing_pad_token():
    tokenizer = copy.deepcopy(load_tokenizer("tiny-gpt2"))
    tokenizer.chat_template = (
        "{% for m in messages %}<{{ m['role'] }}> {{ m['content'] }} {% endfor %}"
        "{% if add_generation_prompt %}<assistant>{% endif %}"
    )
    tokenizer.pad_token = None
    turns = (("user", "hi"), ("assistant", "hello"), ("user", "refund please"))
    assert prompt_text(tokenizer, turns) == (
        "<user> hi <assistant> hello <user> refund please <assistant>"
    )
    assert prompt_text(tokenizer, "hi") == "<user> hi <assistant>"
    collate = GenerationCollator(tokenizer, max_length=32)
    assert collate.pad == collate.eos == tokenizer.sep_token_id
    assert collate.recipe["prompt_format"] == "chat_template"
    batch = collate([Example("a", 0, "hi", "ok"), Example("b", 0, turns, "sure")])
    assert batch["input_ids"][0, batch["attention_mask"][0].sum() :].eq(collate.eos).all()


def test_lora_recipe_omits_default_targets():
    assert LoraSettings().recipe() == {"rank": 8, "alpha": 16, "dropout": 0.0}
    assert LoraSettings(targets=("c_attn",)).recipe(("c_attn",)) == LoraSettings().recipe()
    assert LoraSettings(targets=("c_attn", "c_fc")).recipe(("c_attn",))["targets"] == [
        "c_attn",
        "c_fc",
    ]
