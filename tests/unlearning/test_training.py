"""I1 isolation, prefix sharing, resume, and seeding of stage training."""

from __future__ import annotations

import pytest
import torch

from tests.unlearning.conftest import FAST, make_slices
from unlearning.artifacts import StageKey
from unlearning.layers import block_index
from unlearning.training import TrainSettings, stage_plan, stage_seed, train_shard, train_stage


def _snapshot(host):
    return {n: p.detach().clone() for n, p in host.model.named_parameters()}


def _changed(before, after):
    return {n for n in before if not torch.equal(before[n], after[n])}


def _train_sequence_checking_isolation(host, backbone, order, slices):
    collate = _collate(backbone)
    parents = []
    for position in range(1, len(order) + 1):
        key = StageKey(0, tuple(order[:position]))
        before = _snapshot(host)
        examples = [e for s in key.prefix for e in slices[s]]
        artifact = train_stage(
            host,
            key=key,
            parents=parents,
            examples=examples,
            collate=collate,
            settings=FAST,
            model_seed=3,
        )
        changed = _changed(before, _snapshot(host))
        allowed = set(host.group_param_names[position]) | set(host.head_param_names)
        assert changed <= allowed, f"stage {position} changed {sorted(changed - allowed)[:3]}"
        lora_b = {n for n in host.group_param_names[position] if ".lora_B." in n}
        assert lora_b <= changed, "the stage's own LoRA B must have been trained"
        assert set(host.head_param_names) & changed, "the head is trained at every stage"
        for lower in range(position + 1, host.num_groups + 1):
            for name, param in host.parameters_of(lower):
                if ".lora_B." in name:
                    assert torch.count_nonzero(param) == 0, "untrained groups stay zero"
        parents.append(artifact)
    return parents


def _collate(backbone):
    from unlearning.backbones import make_collator

    return make_collator(backbone)


@pytest.mark.parametrize("backbone", ["tiny-bert", "tiny-gpt2", "tiny-llama", "tiny-vit"])
def test_each_stage_changes_only_its_group_and_the_head(host_factory, backbone):
    host = host_factory(backbone, 4)
    slices = make_slices(backbone, 4, 8)
    _train_sequence_checking_isolation(host, backbone, (2, 0, 3, 1), slices)


def test_twelve_blocks_stage_of_block_one_leaves_blocks_ten_and_eleven(host_factory):
    host = host_factory("tiny-bert-12", 12)
    slices = make_slices("tiny-bert-12", 12, 4)
    parents = _train_sequence_checking_isolation(host, "tiny-bert-12", tuple(range(12)), slices)
    stage_11 = parents[10]  # group 11 = block 1
    blocks = {block_index(n, host.anatomy.block_path) for n in stage_11.tensors}
    assert blocks == {1, None}  # block 1's LoRA and the head (no block)


def test_stage_reads_only_its_prefix_slices(host_factory, store, collate_for):
    seen: list[set[str]] = []

    class Recording:
        def __init__(self, inner):
            self.inner = inner

        def __call__(self, examples):
            seen[-1].update(e.key for e in examples)
            return self.inner(examples)

    slices = make_slices("tiny-bert", 3, 6)
    collate = Recording(collate_for("tiny-bert"))
    host = host_factory("tiny-bert", 3)

    def start_next(artifact, reused):
        seen.append(set())

    seen.append(set())
    train_shard(
        host,
        shard=0,
        sequences=[(1, 2, 0)],
        slices=slices,
        store=store,
        collate=collate,
        settings=FAST,
        model_seed=1,
        on_stage=start_next,
    )
    for position, keys in enumerate(seen[:3], 1):
        expected = {e.key for s in (1, 2, 0)[:position] for e in slices[s]}
        assert keys == expected


def test_shared_prefixes_are_trained_once(host_factory, store, collate_for):
    sequences = [(0, 1, 2), (0, 2, 1), (1, 0, 2)]
    assert stage_plan(sequences) == [
        (0,),
        (0, 1),
        (0, 1, 2),
        (0, 2),
        (0, 2, 1),
        (1,),
        (1, 0),
        (1, 0, 2),
    ]
    run = train_shard(
        host_factory("tiny-bert", 3),
        shard=0,
        sequences=sequences,
        slices=make_slices("tiny-bert", 3, 6),
        store=store,
        collate=collate_for("tiny-bert"),
        settings=FAST,
        model_seed=1,
    )
    assert len(run.trained) == 8
    assert not run.reused
    assert len(set(run.digests.values())) == 8


def test_resume_after_crash_equals_uninterrupted_run(host_factory, tmp_path, collate_for):
    from unlearning.artifacts import LocalArtifactStore

    slices = make_slices("tiny-bert", 3, 6)
    kwargs = dict(
        shard=0,
        sequences=[(2, 0, 1), (1, 2, 0)],
        slices=slices,
        collate=collate_for("tiny-bert"),
        settings=FAST,
        model_seed=5,
    )
    full = train_shard(
        host_factory("tiny-bert", 3), store=LocalArtifactStore(tmp_path / "a"), **kwargs
    )

    class Crash(Exception):
        pass

    def crash_after_two(artifact, reused):
        if artifact.key.position == 2:
            raise Crash

    resumed_store = LocalArtifactStore(tmp_path / "b")
    with pytest.raises(Crash):
        train_shard(
            host_factory("tiny-bert", 3), store=resumed_store, on_stage=crash_after_two, **kwargs
        )
    assert {k.prefix for k in resumed_store.keys()} == {(2,), (2, 0)}
    # a fresh process would start from a fresh host: do the same here
    resumed = train_shard(host_factory("tiny-bert", 3), store=resumed_store, **kwargs)
    assert resumed.reused == [(2,), (2, 0)]
    assert resumed.digests == full.digests
    for prefix in full.digests:
        a = LocalArtifactStore(tmp_path / "a").load(StageKey(0, prefix)).tensors
        b = resumed_store.load(StageKey(0, prefix)).tensors
        assert all(torch.equal(a[n], b[n]) for n in a)


def test_seeds_follow_the_prefix_not_the_sequence():
    a = stage_seed(1, StageKey(0, (2, 0)), "order")
    assert a == stage_seed(1, StageKey(0, (2, 0)), "order")
    assert a != stage_seed(1, StageKey(0, (0, 2)), "order")
    assert a != stage_seed(1, StageKey(1, (2, 0)), "order")
    assert a != stage_seed(2, StageKey(0, (2, 0)), "order")
    assert a != stage_seed(1, StageKey(0, (2, 0)), "dropout")


def test_different_model_seed_gives_different_stage(host_factory, collate_for):
    slices = make_slices("tiny-bert", 1, 8)
    digests = set()
    for seed in (1, 2):
        artifact = train_stage(
            host_factory("tiny-bert", 1),
            key=StageKey(0, (0,)),
            parents=[],
            examples=slices[0],
            collate=collate_for("tiny-bert"),
            settings=FAST,
            model_seed=seed,
        )
        digests.add(artifact.digest)
    assert len(digests) == 2


def test_stage_refuses_missing_parents_or_data(host_factory, collate_for):
    host = host_factory("tiny-bert", 3)
    with pytest.raises(ValueError, match="parent"):
        train_stage(
            host,
            key=StageKey(0, (0, 1)),
            parents=[],
            examples=make_slices("tiny-bert", 1, 2)[0],
            collate=collate_for("tiny-bert"),
            settings=FAST,
            model_seed=1,
        )
    with pytest.raises(ValueError, match="no training examples"):
        train_stage(
            host,
            key=StageKey(0, (0,)),
            parents=[],
            examples=[],
            collate=collate_for("tiny-bert"),
            settings=FAST,
            model_seed=1,
        )


@pytest.mark.parametrize(
    ("field", "value"), [("epochs", 0), ("batch_size", 0), ("learning_rate", -1.0)]
)
def test_bad_settings_name_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        TrainSettings(**{field: value})


def test_recipe_records_what_replay_needs(host_factory, collate_for):
    slices = make_slices("tiny-bert", 1, 4)
    artifact = train_stage(
        host_factory("tiny-bert", 1),
        key=StageKey(0, (0,)),
        parents=[],
        examples=slices[0],
        collate=collate_for("tiny-bert"),
        settings=FAST,
        model_seed=9,
    )
    recipe = artifact.recipe
    assert recipe["padding"] == "longest"
    assert recipe["runtime"]["libraries"]["torch"].startswith("2.13")
    assert recipe["runtime"]["env"] == {"MKL_CBWR": "AVX2,STRICT", "ATEN_CPU_CAPABILITY": "default"}
    assert recipe["lineage"]["records"] == 4
    assert recipe["seeds"]["order"] == stage_seed(9, StageKey(0, (0,)), "order")
