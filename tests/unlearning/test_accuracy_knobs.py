"""The accuracy knobs: logit averaging, rsLoRA, warm-up + decay, epochs scaled per stage.

Serving rules are checked against an independent recomputation; training knobs against
replay (a stage trained with them is reproduced from its recipe alone) and against the
stages of old deployments (a recipe without the new keys trains and replays as before).
"""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest
import torch

from tests.unlearning.conftest import FAST, LORA, make_slices, texts
from unlearning.artifacts import LocalArtifactStore, StageKey
from unlearning.assembly import AdapterHost, LoraSettings
from unlearning.backbones import build_base, make_collator
from unlearning.data import Example
from unlearning.ensemble import Ensemble, StageCache, average_shards, serving_choices
from unlearning.replay import replay_prefix
from unlearning.training import TrainSettings, train_shard

PLAN = {0: [(0, 1, 2), (2, 0, 1)], 1: [(1, 2, 0)]}
# What every stage recorded before the knobs existed: exactly these keys.
OLD_SETTINGS_KEYS = {"epochs", "learning_rate", "batch_size", "weight_decay", "max_length"}
OLD_SETTINGS_KEYS |= {"precision"}
KNOBS = replace(FAST, schedule="warmup_decay", stage_epochs="scaled")
RSLORA = replace(LORA, rslora=True)


def _host(lora: LoraSettings = LORA) -> AdapterHost:
    return AdapterHost(build_base("tiny-bert", 3), num_groups=3, lora=lora)


def _train(store, settings, lora=LORA, plan=PLAN):
    host = _host(lora)
    for shard, sequences in plan.items():
        train_shard(
            host,
            shard=shard,
            sequences=sequences,
            slices=make_slices("tiny-bert", 3, 6, seed=shard),
            store=store,
            collate=make_collator("tiny-bert"),
            settings=settings,
            model_seed=4,
        )
    return host


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    store = LocalArtifactStore(tmp_path_factory.mktemp("legacy"))
    return _train(store, FAST), store


def test_logit_averaging_equals_an_independent_recomputation(trained):
    host, store = trained
    collate = make_collator("tiny-bert")
    payloads = [e.payload for e in texts(8, seed=5)]
    choices = serving_choices(PLAN, {0: {1}})
    logits = []
    for choice in choices:  # a fresh host per shard, cold assembly
        fresh = _host()
        fresh.activate([store.load(k) for k in choice.stages])
        with torch.inference_mode():
            batch = collate([Example(str(i), 0, p) for i, p in enumerate(payloads)])
            logits.append(fresh.model(**batch).logits)
    expected = ((logits[0] + logits[1]) / 2).softmax(dim=-1)
    served = Ensemble(host, choices, StageCache(store.load), collate, averaging="logits")
    assert torch.equal(served.predict_proba(payloads), expected)
    assert served.predict(payloads) == expected.argmax(dim=-1).tolist()
    # The two rules are different functions of the same stages.
    probs = Ensemble(host, choices, StageCache(store.load), collate, averaging="probs")
    assert not torch.equal(probs.predict_proba(payloads), expected)
    assert torch.equal(
        average_shards(logits, "probs"), (logits[0].softmax(-1) + logits[1].softmax(-1)) / 2
    )


def test_an_unknown_averaging_rule_is_refused(trained):
    host, store = trained
    with pytest.raises(ValueError, match="averaging"):
        Ensemble(host, [], StageCache(store.load), make_collator("tiny-bert"), averaging="max")
    with pytest.raises(ValueError, match="averaging"):
        average_shards([torch.zeros(1, 3)], "median")


def test_old_recipes_record_and_replay_exactly_as_before(trained, tmp_path):
    _, store = trained
    stage = store.load(StageKey(0, (2, 0)))
    assert set(stage.recipe["settings"]) == OLD_SETTINGS_KEYS
    assert "rslora" not in stage.recipe["lora"]
    # A stored recipe from before the knobs names none of them: it means the legacy ones.
    settings = TrainSettings.from_recipe(
        {k: stage.recipe["settings"][k] for k in OLD_SETTINGS_KEYS}
    )
    assert (settings.schedule, settings.stage_epochs) == ("constant", "fixed")
    replayed = replay_prefix(
        _host(),
        shard=0,
        prefix=(2, 0),
        slices=make_slices("tiny-bert", 3, 6, seed=0),
        collate=make_collator("tiny-bert"),
        settings=settings,
        model_seed=4,
    )
    assert [a.digest for a in replayed] == [
        store.load(StageKey(0, p)).digest for p in ((2,), (2, 0))
    ]


def test_new_knobs_are_recorded_and_replay_exactly_from_the_recipe(trained, tmp_path):
    _, legacy = trained
    store = LocalArtifactStore(tmp_path / "knobs")
    _train(store, KNOBS, RSLORA, plan={0: [(2, 0, 1)]})
    stage = store.load(StageKey(0, (2, 0)))
    recorded = stage.recipe["settings"]
    assert (recorded["schedule"], recorded["stage_epochs"]) == ("warmup_decay", "scaled")
    assert stage.recipe["lora"]["rslora"] is True
    # Stage 1 of 3 reads a third of the shard: 3 epochs of one batch (6 records, batch 8);
    # stage 2 reads two thirds: 2 epochs of two batches (12 records).
    assert store.load(StageKey(0, (2,))).metrics["steps"] == 3.0
    assert stage.metrics["steps"] == 4.0
    # Replay from the recipe alone, in a fresh host.
    lora = LoraSettings(
        rank=stage.recipe["lora"]["rank"],
        alpha=stage.recipe["lora"]["alpha"],
        dropout=stage.recipe["lora"]["dropout"],
        rslora=stage.recipe["lora"].get("rslora", False),
    )
    replayed = replay_prefix(
        _host(lora),
        shard=0,
        prefix=(2, 0, 1),
        slices=make_slices("tiny-bert", 3, 6, seed=0),
        collate=make_collator("tiny-bert"),
        settings=TrainSettings.from_recipe(recorded),
        model_seed=4,
    )
    expected = [store.load(StageKey(0, p)).digest for p in ((2,), (2, 0), (2, 0, 1))]
    assert [a.digest for a in replayed] == expected
    # The knobs change the trained bits (so the replay above could have failed).
    assert expected[1] != legacy.load(StageKey(0, (2, 0))).digest


@pytest.mark.parametrize(
    ("knob", "value"), [("schedule", "warmup_decay"), ("stage_epochs", "scaled")]
)
def test_each_training_knob_changes_the_stage(trained, tmp_path, knob, value):
    _, legacy = trained
    store = LocalArtifactStore(tmp_path / knob)
    _train(store, replace(FAST, **{knob: value}), plan={0: [(2, 0, 1)]})
    # Stage 3 reads 18 records: 3 steps of 8, the last one at half the peak rate.
    key = StageKey(0, (2, 0, 1))
    assert store.load(key).digest != legacy.load(key).digest


def test_rslora_changes_the_stage(trained, tmp_path):
    _, legacy = trained
    store = LocalArtifactStore(tmp_path / "rslora")
    _train(store, FAST, RSLORA, plan={0: [(2,)]})
    assert store.load(StageKey(0, (2,))).digest != legacy.load(StageKey(0, (2,))).digest


def test_schedule_and_stage_epochs_rules():
    s = TrainSettings(epochs=2, schedule="warmup_decay")
    factors = [s.lr_factor(step, 20) for step in range(20)]
    assert factors[:2] == [0.5, 1.0]  # warm-up: a tenth of 20 steps
    assert factors[2] == 1.0
    assert factors[-1] == pytest.approx(1 / 18)
    assert all(a >= b for a, b in itertools.pairwise(factors[1:]))  # then only down
    assert TrainSettings().lr_factor(7, 20) == 1.0
    scaled = TrainSettings(epochs=2, stage_epochs="scaled")
    assert [scaled.epochs_at(i, 3) for i in (1, 2, 3)] == [6, 3, 2]
    assert [TrainSettings(epochs=2).epochs_at(i, 3) for i in (1, 2, 3)] == [2, 2, 2]
    with pytest.raises(ValueError, match="schedule"):
        TrainSettings(schedule="cosine")
    with pytest.raises(ValueError, match="stage_epochs"):
        TrainSettings(stage_epochs="double")
