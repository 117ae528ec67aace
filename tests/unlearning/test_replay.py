"""I4: a replay from lineage in a separate process reproduces stage tensors bit for bit (a
text encoder and a vision transformer here; decoders in tests/unlearning/test_generation.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from tests.unlearning.conftest import FAST, make_slices
from unlearning.artifacts import LocalArtifactStore, StageKey
from unlearning.training import train_shard

REPO = Path(__file__).resolve().parents[2]

# The replay process rebuilds everything from scratch: base model, data, seeds. It shares
# nothing with the training process but the code and the recorded recipe.
REPLAY_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    import unlearning
    import torch
    torch.set_num_threads(int(sys.argv[3]))
    from tests.unlearning.conftest import FAST, LORA, make_slices
    from unlearning.artifacts import LocalArtifactStore
    from unlearning.assembly import AdapterHost
    from unlearning.backbones import build_base, make_collator
    from unlearning.replay import replay_prefix

    prefix = tuple(json.loads(sys.argv[1]))
    out = LocalArtifactStore(Path(sys.argv[2]))
    backbone = sys.argv[4]
    host = AdapterHost(build_base(backbone, 3), num_groups=3, lora=LORA)
    slices = make_slices(backbone, 3, 6)
    lineage = {s: slices[s] for s in prefix}  # only the clean prefix's records exist here
    for stage in replay_prefix(host, shard=0, prefix=prefix, slices=lineage,
                               collate=make_collator(backbone), settings=FAST, model_seed=21):
        out.save(stage)
        print(json.dumps([list(stage.key.prefix), stage.digest]))
    """
)


def _replay(prefix, out_dir, threads, backbone="tiny-bert"):
    args = [json.dumps(list(prefix)), str(out_dir), str(threads), backbone]
    result = subprocess.run(  # the test's own interpreter and code, no shell
        [sys.executable, "-c", REPLAY_SCRIPT, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("[")]
    return {tuple(p): d for p, d in lines}


@pytest.mark.parametrize("backbone", ["tiny-bert", "tiny-vit"])
def test_replay_in_another_process_reproduces_the_clean_prefix(
    host_factory, tmp_path, collate_for, backbone
):
    store = LocalArtifactStore(tmp_path / "trained")
    run = train_shard(
        host_factory(backbone, 3),
        shard=0,
        sequences=[(2, 0, 1), (1, 2, 0)],
        slices=make_slices(backbone, 3, 6),
        store=store,
        collate=collate_for(backbone),
        settings=FAST,
        model_seed=21,
    )
    # slice 1 was erased: sequence (2, 0, 1) keeps its clean prefix (2, 0)
    replayed = _replay((2, 0), tmp_path / "replayed", threads=2, backbone=backbone)
    assert replayed == {(2,): run.digests[(2,)], (2, 0): run.digests[(2, 0)]}
    other = LocalArtifactStore(tmp_path / "replayed")
    for prefix in replayed:
        a = store.load(StageKey(0, prefix)).tensors
        b = other.load(StageKey(0, prefix)).tensors
        assert a.keys() == b.keys()
        assert all(torch.equal(a[n], b[n]) for n in a)


def test_replay_with_one_thread_matches_under_the_determinism_pins(
    host_factory, tmp_path, collate_for
):
    store = LocalArtifactStore(tmp_path / "trained")
    torch.set_num_threads(2)
    run = train_shard(
        host_factory("tiny-bert", 3),
        shard=0,
        sequences=[(0, 1, 2)],
        slices=make_slices("tiny-bert", 3, 6),
        store=store,
        collate=collate_for("tiny-bert"),
        settings=FAST,
        model_seed=21,
    )
    replayed = _replay((0, 1, 2), tmp_path / "replayed", threads=1)
    assert replayed == run.digests


def test_replay_on_different_records_does_not_match(host_factory, tmp_path, collate_for):
    # The comparison can fail: train on slices whose records differ from the replay's.
    store = LocalArtifactStore(tmp_path / "trained")
    slices = make_slices("tiny-bert", 3, 6)
    slices[2] = slices[2][:-1]  # one record fewer than the replay will see
    run = train_shard(
        host_factory("tiny-bert", 3),
        shard=0,
        sequences=[(2, 0, 1)],
        slices=slices,
        store=store,
        collate=collate_for("tiny-bert"),
        settings=FAST,
        model_seed=21,
    )
    replayed = _replay((2,), tmp_path / "replayed", threads=2)
    assert replayed[(2,)] != run.digests[(2,)]
