"""``unlearning.baseline.train_jointly``: the non-sharded baseline the benchmarks compare with."""

from __future__ import annotations

import torch

from tests.unlearning.conftest import FAST, LORA, texts
from unlearning.artifacts import StageKey
from unlearning.assembly import AdapterHost
from unlearning.backbones import build_base, make_collator
from unlearning.baseline import train_jointly
from unlearning.training import _init_group, _init_head, _optimise, stage_seed

KEY = StageKey(-1, (0,))
SEED = 5


def _host(groups: int) -> AdapterHost:
    return AdapterHost(build_base("tiny-bert", 3), num_groups=groups, lora=LORA)


def _trained(host: AdapterHost, groups: int) -> dict[str, torch.Tensor]:
    named = [pair for g in range(1, groups + 1) for pair in host.parameters_of(g)]
    return {n: p.detach().clone() for n, p in named + list(host.head_parameters())}


def test_one_group_is_what_the_benchmarks_trained_before():
    """An independent replay of the loop the benchmarks used to inline (one group and the
    head, seeded "lora" and "head", records in key order) gives the same bits."""
    examples = texts(12, seed=3)
    collate = make_collator("tiny-bert")
    host = _host(1)
    train_jointly(host, examples, collate=collate, settings=FAST, model_seed=SEED, key=KEY)

    replay = _host(1)
    replay.set_depth(1)
    replay.forget(1)
    _init_group(replay, 1, stage_seed(SEED, KEY, "lora"))
    _init_head(replay, stage_seed(SEED, KEY, "head"))
    trainable = [p for _, p in replay.parameters_of(1)] + [p for _, p in replay.head_parameters()]
    for param in trainable:
        param.requires_grad_(True)
    ordered = sorted(examples, key=lambda e: e.key)
    _optimise(replay.model, trainable, ordered, collate, FAST, SEED, KEY, None)

    ours, theirs = _trained(host, 1), _trained(replay, 1)
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[n], theirs[n]) for n in ours)


def test_every_group_and_the_head_train_and_end_frozen():
    examples = texts(12, seed=4)
    host = _host(3)
    before = _trained(host, 3)
    losses = train_jointly(
        host,
        examples,
        collate=make_collator("tiny-bert"),
        settings=FAST,
        model_seed=SEED,
        key=KEY,
        groups=3,
    )
    after = _trained(host, 3)

    assert len(losses) == -(-len(examples) // FAST.batch_size)  # one epoch of batches
    for g in (1, 2, 3):
        names = [n for n, _ in host.parameters_of(g)]
        assert any(not torch.equal(before[n], after[n]) for n in names), f"group {g} unchanged"
    assert any(not torch.equal(before[n], after[n]) for n, _ in host.head_parameters())
    assert not any(p.requires_grad for p in host.model.parameters())
