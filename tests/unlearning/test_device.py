"""Devices and precisions (unlearning.device), exercised on the CPU.

The CUDA paths run in tests/unlearning/test_gpu.py (marked ``gpu``, skipped without one);
here: spec parsing, what ``auto`` picks, the recipe's device facts, bf16 autocast training
on the CPU, and that CPU fp32 training gives exactly the bits it gave before devices.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import torch

from tests.unlearning.conftest import FAST, LORA, make_slices, texts
from unlearning.artifacts import StageKey
from unlearning.assembly import AdapterHost
from unlearning.backbones import build_base, make_collator
from unlearning.device import (
    _driver_version,
    autocast,
    check_precision,
    configure_determinism,
    describe,
    device_facts,
    grad_scaler,
    module_bytes,
    resolve_device,
    seeded,
)
from unlearning.ensemble import Ensemble, StageCache
from unlearning.recipe import runtime_recipe
from unlearning.replay import replay_prefix
from unlearning.training import TrainSettings, train_stage

CPU = torch.device("cpu")
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")

# Digests of prefix (2, 0, 1) of tiny-bert under FAST, model seed 21, computed with the
# code as it was before devices existed (6c5e19f^, the start of issue 13). CPU fp32 must
# keep giving these bits: stored stages and their replays depend on it. The bits depend on
# the CPU's maker (the math libraries take other code paths), so each is the pre-device
# code's own output on a machine of that maker; another maker's is not known here.
BEFORE_DEVICES = {
    "GenuineIntel": {
        (2,): "sha256:ff68adb00e070e0780ab8683c166792c2109496099d5c1997c7ea7f587b285cf",
        (2, 0): "sha256:f49e5a902a4094dcbc44c569d05d3fff83a29505b6b4c6990bd1ed996ad88894",
        (2, 0, 1): "sha256:b47f713399b2936a790de7a1fb74c7b3d653bcb3e7b1963bdadc85a15949d707",
    },
    "AuthenticAMD": {
        (2,): "sha256:088f22ed095df398ffef35af02bee833d6a37c1a253a2be46cb8814f68c23847",
        (2, 0): "sha256:1a6d6bd3ad9abf127a648c7d18e2ea90d9904640776e7f3e273d0a13f7131230",
        (2, 0, 1): "sha256:c3dff7851a7168291ec6372dbf2e2315c3ec423fe658c7297fddb49839d154c5",
    },
}


def _cpu_maker() -> str:
    """``vendor_id`` from /proc/cpuinfo ("" where there is none)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return ""
    return next(
        (line.split(":", 1)[1].strip() for line in lines if line.startswith("vendor_id")), ""
    )


@pytest.mark.parametrize("spec", ["cpu", "CPU", " cpu ", "cpu:0", torch.device("cpu")])
def test_cpu_specs_resolve_to_the_cpu(spec):
    assert resolve_device(spec) == CPU


@no_cuda
@pytest.mark.parametrize("spec", ["auto", "", None, "AUTO"])
def test_auto_picks_the_cpu_without_cuda(spec):
    assert resolve_device(spec) == CPU


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_auto_picks_the_first_gpu_with_cuda():
    assert resolve_device("auto") == torch.device("cuda", 0)


@pytest.mark.parametrize("spec", ["gpu", "cuda:x", "cuda:-1", "cpu:1", "auto:0", "mps", "cuda0"])
def test_malformed_specs_are_refused(spec):
    with pytest.raises(ValueError, match="device: "):
        resolve_device(spec)


@no_cuda
@pytest.mark.parametrize("spec", ["cuda", "cuda:0", "cuda:3"])
def test_cuda_specs_are_refused_without_cuda(spec):
    with pytest.raises(ValueError, match="sees no CUDA device"):
        resolve_device(spec)


def test_precisions_are_checked_per_device():
    assert check_precision("fp32", CPU) == "fp32"
    assert check_precision("BF16", CPU) == "bf16"
    with pytest.raises(ValueError, match="fp16 autocast needs a CUDA device"):
        check_precision("fp16", CPU)
    with pytest.raises(ValueError, match="not one of fp32, bf16, fp16"):
        check_precision("fp64", CPU)
    with pytest.raises(ValueError, match="precision must be"):
        TrainSettings(precision="half")


def test_autocast_lowers_matmuls_only_when_asked():
    a, b = torch.ones(4, 4), torch.ones(4, 4)
    with autocast(CPU, "fp32"):
        assert (a @ b).dtype == torch.float32
    with autocast(CPU, "bf16"):
        assert (a @ b).dtype == torch.bfloat16
    assert grad_scaler(CPU, "fp32") is None
    assert grad_scaler(CPU, "bf16") is None


def test_seeded_draws_repeat_and_leave_the_callers_rng_alone():
    before = torch.random.get_rng_state()
    with seeded(CPU, 7):
        first = torch.rand(5)
    with seeded(CPU, 7):
        again = torch.rand(5)
    assert torch.equal(first, again)
    assert torch.equal(torch.random.get_rng_state(), before)


def test_cpu_determinism_is_left_as_it_was():
    was = torch.are_deterministic_algorithms_enabled()
    configure_determinism(CPU)
    assert torch.are_deterministic_algorithms_enabled() == was


def test_cpu_facts_and_recipe_name_the_cpu_only():
    assert device_facts(CPU) == {"kind": "cpu"}
    assert describe(device_facts(CPU), "fp32") == "cpu/fp32"
    recipe = runtime_recipe(CPU)
    assert recipe["device"] == "cpu"
    assert "cuda" not in recipe  # a CPU recipe is what it was before devices
    assert recipe == runtime_recipe()
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"  # pinned on import


def test_driver_version_is_omitted_without_nvidia_smi_and_read_with_it(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert _driver_version(0) is None
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho '550.54.15'\n")
    smi.chmod(smi.stat().st_mode | stat.S_IEXEC)
    assert _driver_version(0) == "550.54.15"
    smi.write_text("#!/bin/sh\necho 'No devices were found' >&2\nexit 6\n")
    assert _driver_version(0) is None


def test_cpu_fp32_digests_are_unchanged_by_devices():
    expected = BEFORE_DEVICES.get(_cpu_maker())
    if expected is None:
        pytest.skip(f"no pre-device digests recorded for a {_cpu_maker() or 'unknown'} CPU")
    host = AdapterHost(build_base("tiny-bert", 3), num_groups=3, lora=LORA, device="cpu")
    stages = replay_prefix(
        host,
        shard=0,
        prefix=(2, 0, 1),
        slices=make_slices("tiny-bert", 3, 6),
        collate=make_collator("tiny-bert"),
        settings=FAST,
        model_seed=21,
    )
    assert {s.key.prefix: s.digest for s in stages} == expected
    assert all(t.device == CPU for s in stages for t in s.tensors.values())
    assert stages[0].recipe["settings"]["precision"] == "fp32"
    assert stages[0].recipe["runtime"]["device"] == "cpu"


def _bf16_stage(host_factory):
    host = host_factory("tiny-bert", 2)
    return train_stage(
        host,
        key=StageKey(0, (1,)),
        parents=[],
        examples=make_slices("tiny-bert", 2, 8)[1],
        collate=make_collator("tiny-bert"),
        settings=TrainSettings(**{**FAST.__dict__, "precision": "bf16"}),
        model_seed=5,
    )


def test_bf16_autocast_trains_on_the_cpu_reproducibly_and_records_it(host_factory):
    stage = _bf16_stage(host_factory)
    assert stage.recipe["settings"]["precision"] == "bf16"
    assert stage.recipe["runtime"]["device"] == "cpu"
    assert torch.isfinite(torch.tensor(stage.metrics["final_loss"]))
    # Master weights and stage tensors stay fp32 at every precision.
    assert {t.dtype for t in stage.tensors.values()} == {torch.float32}
    assert _bf16_stage(host_factory).digest == stage.digest
    fp32 = train_stage(
        host_factory("tiny-bert", 2),
        key=StageKey(0, (1,)),
        parents=[],
        examples=make_slices("tiny-bert", 2, 8)[1],
        collate=make_collator("tiny-bert"),
        settings=FAST,
        model_seed=5,
    )
    assert fp32.digest != stage.digest  # bf16 is a different recipe, with other bits


def test_fp16_training_on_the_cpu_is_refused(host_factory):
    with pytest.raises(ValueError, match="fp16 autocast needs a CUDA device"):
        train_stage(
            host_factory("tiny-bert", 2),
            key=StageKey(0, (0,)),
            parents=[],
            examples=make_slices("tiny-bert", 2, 4)[0],
            collate=make_collator("tiny-bert"),
            settings=TrainSettings(precision="fp16"),
            model_seed=5,
        )


def test_ensemble_serves_from_the_hosts_device_and_answers_on_the_cpu(host_factory):
    from unlearning.ensemble import ShardChoice

    host = host_factory("tiny-bert", 2)
    stage = train_stage(
        host,
        key=StageKey(0, (0,)),
        parents=[],
        examples=make_slices("tiny-bert", 2, 6)[0],
        collate=make_collator("tiny-bert"),
        settings=FAST,
        model_seed=5,
    )
    choice = ShardChoice(0, 0, (stage.key,))
    cache = StageCache({stage.key: stage}.__getitem__)
    payloads = [e.payload for e in texts(4, seed=3)]
    fp32 = Ensemble(host, [choice], cache, make_collator("tiny-bert")).predict_proba(payloads)
    bf16 = Ensemble(host, [choice], cache, make_collator("tiny-bert"), precision="bf16")
    probs = bf16.predict_proba(payloads)
    assert fp32.device == probs.device == CPU
    assert fp32.dtype == probs.dtype == torch.float32
    assert torch.allclose(fp32, probs, atol=0.05)
    assert host.device == CPU


def test_module_bytes_counts_parameters_and_buffers():
    layer = torch.nn.BatchNorm1d(3)  # 2 x 3 fp32 parameters; buffers 2 x 3 fp32 + 1 int64
    assert module_bytes(layer) == 6 * 4 + 6 * 4 + 8
    assert module_bytes(torch.nn.Linear(3, 2).to(torch.bfloat16)) == 8 * 2
