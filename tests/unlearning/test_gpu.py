"""Training, assembly and replay on CUDA (marked ``gpu``; skipped without a CUDA device).

What must hold on one GPU is what holds on the CPU: a prefix assembled from stored stages
gives the very logits the model had right after training it (``torch.equal``), and a
replay in another process reproduces every stage's digest. Across devices bits differ,
so CPU and GPU are compared within a tolerance, with dropout off (the two devices draw
dropout masks from different generators; init and data order are shared).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from tests.unlearning.conftest import FAST, LORA, make_slices, texts
from unlearning.artifacts import LocalArtifactStore, StageKey
from unlearning.assembly import AdapterHost, LoraSettings
from unlearning.backbones import build_base, make_collator
from unlearning.device import to_device
from unlearning.training import TrainSettings, train_shard

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]

REPO = Path(__file__).resolve().parents[2]
CUDA = "cuda:0"
SEQUENCES = [(2, 0, 1), (1, 2, 0)]


def _logits(host: AdapterHost, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.inference_mode():
        return host.model(**to_device(batch, host.device)).logits.clone()


def _train(host: AdapterHost, store: LocalArtifactStore, settings: TrainSettings = FAST, **kw):
    return train_shard(
        host,
        shard=0,
        sequences=SEQUENCES,
        slices=make_slices("tiny-bert", 3, 6),
        store=store,
        collate=make_collator("tiny-bert"),
        settings=settings,
        model_seed=21,
        **kw,
    )


def test_training_on_cuda_records_the_gpu_and_saves_cpu_tensors(tmp_path):
    host = AdapterHost(build_base("tiny-bert", 3), num_groups=3, lora=LORA, device=CUDA)
    assert all(p.device.type == "cuda" for p in host.model.parameters())
    store = LocalArtifactStore(tmp_path / "gpu")
    run = _train(host, store)
    assert len(run.trained) == 6
    stage = store.load(StageKey(0, (2, 0, 1)))
    runtime = stage.recipe["runtime"]
    assert runtime["device"] == "cuda"
    assert runtime["cuda"]["gpu_name"] == torch.cuda.get_device_name(0)
    assert runtime["cuda"]["deterministic_algorithms"] is True
    assert runtime["cuda"]["env"] == {"CUBLAS_WORKSPACE_CONFIG": ":4096:8"}
    assert stage.recipe["settings"]["precision"] == "fp32"
    assert torch.isfinite(torch.tensor(stage.metrics["final_loss"]))
    assert all(t.device.type == "cpu" for t in host.stage_tensors(1).values())


def test_bf16_training_on_cuda_is_reproducible(tmp_path):
    bf16 = TrainSettings(**{**FAST.__dict__, "precision": "bf16"})
    digests = []
    for attempt in ("a", "b"):
        host = AdapterHost(build_base("tiny-bert", 3), num_groups=3, lora=LORA, device=CUDA)
        digests.append(_train(host, LocalArtifactStore(tmp_path / attempt), bf16).digests)
    assert digests[0] == digests[1]


def test_prefix_assembly_on_cuda_is_exact(tmp_path):
    store = LocalArtifactStore(tmp_path / "gpu")
    batch = make_collator("tiny-bert")(texts(16, seed=99, prefix="probe"))
    host = AdapterHost(build_base("tiny-bert", 3), num_groups=3, lora=LORA, device=CUDA)
    after_stage: dict[tuple[int, ...], torch.Tensor] = {}
    _train(
        host,
        store,
        on_stage=lambda a, _: after_stage.__setitem__(a.key.prefix, _logits(host, batch)),
    )
    fresh = AdapterHost(build_base("tiny-bert", 3), num_groups=3, lora=LORA, device=CUDA)
    for prefix, expected in sorted(after_stage.items(), key=lambda kv: kv[0][::-1]):
        stages = [store.load(StageKey(0, prefix[:d])) for d in range(1, len(prefix) + 1)]
        fresh.activate(stages)  # hot switches on one GPU host, in another order
        assert torch.equal(_logits(fresh, batch), expected), prefix


REPLAY_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import unlearning
    from tests.unlearning.conftest import FAST, LORA, make_slices
    from unlearning.assembly import AdapterHost
    from unlearning.backbones import build_base, make_collator
    from unlearning.replay import replay_prefix

    host = AdapterHost(build_base("tiny-bert", 3), num_groups=3, lora=LORA, device="cuda:0")
    slices = make_slices("tiny-bert", 3, 6)
    for stage in replay_prefix(host, shard=0, prefix=(2, 0, 1), slices=slices,
                               collate=make_collator("tiny-bert"), settings=FAST, model_seed=21):
        print(json.dumps([list(stage.key.prefix), stage.digest]))
    """
)


def test_replay_in_another_process_on_the_same_gpu_is_bit_exact(tmp_path):
    host = AdapterHost(build_base("tiny-bert", 3), num_groups=3, lora=LORA, device=CUDA)
    run = _train(host, LocalArtifactStore(tmp_path / "gpu"))
    result = subprocess.run(  # the test's own interpreter and code, no shell
        [sys.executable, "-c", REPLAY_SCRIPT],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    replayed = {tuple(p): d for p, d in map(json.loads, result.stdout.splitlines())}
    assert replayed == {p: run.digests[p] for p in [(2,), (2, 0), (2, 0, 1)]}


def _without_dropout(model: nn.Module) -> nn.Module:
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
    return model


def test_cpu_and_gpu_training_agree_within_tolerance(tmp_path):
    lora = LoraSettings(rank=LORA.rank, alpha=LORA.alpha, dropout=0.0)
    results = {}
    for device in ("cpu", CUDA):
        base = _without_dropout(build_base("tiny-bert", 3))
        host = AdapterHost(base, num_groups=3, lora=lora, device=device)
        store = LocalArtifactStore(tmp_path / device.replace(":", "-"))
        _train(host, store)
        results[device] = store.load(StageKey(0, (2, 0, 1))).tensors
    cpu, gpu = results["cpu"], results[CUDA]
    assert cpu.keys() == gpu.keys()
    for name in cpu:
        assert torch.allclose(cpu[name], gpu[name], rtol=1e-3, atol=1e-4), name
