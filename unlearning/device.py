"""Where a model trains and serves, at which precision, and how CUDA is made deterministic.

A stage is a pure function of its lineage and seeds *on one device kind at one precision*:
CPU and CUDA kernels round differently, and bf16 autocast differs from fp32, so those two
facts are part of a stage's recipe and a replay compares digests only when both match.

- Device specs: ``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda``, ``cuda:N``.
- Precisions: ``fp32`` (default, no autocast: today's bits on CPU), ``bf16`` (autocast on
  the device type; CPU and CUDA), ``fp16`` (autocast with a gradient scaler; CUDA only).
  fp16 on CPU is refused rather than silently mapped to something else: CPU autocast
  has no fp16 path worth training on, and a recipe saying "fp16" must mean fp16.
- Determinism on CUDA: ``torch.use_deterministic_algorithms(True)``, cuDNN deterministic
  with benchmarking off, and ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` (cuBLAS reads it when
  its handle is created, so ``unlearning`` sets it on import, before any CUDA work).
- Random draws that must not depend on the device (LoRA and head init, data order) use
  CPU generators; dropout masks are drawn on the device from its generator, seeded per
  stage inside ``seeded`` so nothing leaks into or out of the caller's RNG state.

Master weights, optimizer state and stage tensors stay fp32 at every precision; autocast
only lowers the precision of the forward pass's matmuls.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import torch

from unlearning.recipe import CUDA_DETERMINISM_ENV

PRECISIONS = ("fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
_SPEC = re.compile(r"^(auto|cpu|cuda)(?::(\d+))?$")


def pin_cuda_determinism() -> None:
    """Set the cuBLAS workspace variable unless the operator chose a value (before CUDA)."""
    for name, value in CUDA_DETERMINISM_ENV.items():
        os.environ.setdefault(name, value)


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    """The torch.device a spec names; ``auto`` (or empty/None) picks CUDA when available.

    Raises:
        ValueError: the spec is malformed, or names CUDA (or a CUDA index) not present.
    """
    if isinstance(spec, torch.device):
        spec = str(spec)
    text = (spec or "auto").strip().lower()
    match = _SPEC.match(text)
    if match is None:
        raise ValueError(f"device: {spec!r} is not a device; use auto, cpu, cuda or cuda:N")
    kind, index = match.group(1), match.group(2)
    if kind == "auto":
        if index is not None:
            raise ValueError(f"device: {spec!r}: auto takes no index; use cuda:{index}")
        return torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    if kind == "cpu":
        if index not in (None, "0"):
            raise ValueError(f"device: {spec!r}: there is one CPU device; use cpu")
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ValueError(
            f"device: {spec!r} asks for CUDA, but this torch ({torch.__version__}) sees no "
            "CUDA device; install a CUDA wheel (docs/operations.md) or use cpu"
        )
    count = torch.cuda.device_count()
    number = int(index) if index is not None else torch.cuda.current_device()
    if number >= count:
        raise ValueError(f"device: {spec!r}: only {count} CUDA device(s) here (cuda:0..)")
    return torch.device("cuda", number)


def check_precision(precision: str, device: torch.device) -> str:
    """Validate a precision for a device; returns it normalised.

    Raises:
        ValueError: unknown precision, fp16 on CPU, or bf16 on a GPU without bf16.
    """
    name = (precision or "fp32").strip().lower()
    if name not in PRECISIONS:
        raise ValueError(f"precision: {precision!r} is not one of {', '.join(PRECISIONS)}")
    if name == "fp16" and device.type != "cuda":
        raise ValueError(
            "precision: fp16 autocast needs a CUDA device; use bf16 or fp32 on the CPU"
        )
    if name == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ValueError(f"precision: bf16 is not supported by {torch.cuda.get_device_name()}")
    return name


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    """The forward pass's precision context: nothing at fp32, ``torch.autocast`` otherwise."""
    name = check_precision(precision, device)
    if name == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=_DTYPES[name])


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler | None:
    """A loss scaler for fp16 (whose small gradients underflow); None at fp32 and bf16."""
    if check_precision(precision, device) != "fp16":
        return None
    return torch.amp.GradScaler(device.type)


def backward_step(
    loss: torch.Tensor, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None
) -> None:
    """Backward and optimizer step, through the fp16 loss scaler when there is one."""
    if scaler is None:
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        return
    scaler.scale(loss).backward()  # type: ignore[no-untyped-call]
    scaler.step(optimizer)
    scaler.update()


def fill_from_cpu(param: torch.Tensor, draw: Callable[..., object], **options: Any) -> None:
    """``draw(param, **options)`` with a CPU generator: in place on the CPU, else via a copy.

    Init values are then the same on every device (a GPU generator would give others),
    and on the CPU the draw is the very call it always was.
    """
    if param.device.type == "cpu":
        draw(param, **options)
        return
    scratch = torch.empty(param.shape, dtype=param.dtype)
    draw(scratch, **options)
    param.copy_(scratch)


def configure_determinism(device: torch.device) -> None:
    """Make CUDA kernels reproducible on one GPU; does nothing for the CPU.

    The CPU's determinism comes from ``unlearning.recipe`` (MKL and ATen pins) and must
    not be touched here: CPU fp32 bits stay what they were.
    """
    if device.type != "cuda":
        return
    pin_cuda_determinism()
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True


def to_device(inputs: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """A batch's tensors on ``device`` (a no-op on the CPU: the same tensor objects)."""
    return {name: value.to(device) for name, value in inputs.items()}


@contextlib.contextmanager
def seeded(device: torch.device, seed: int) -> Iterator[None]:
    """Seed the CPU and the device's generator for a block, restoring both afterwards.

    On the CPU this is exactly ``fork_rng(devices=[])`` + ``manual_seed``, as before.
    """
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)  # also seeds every CUDA device's default generator
        yield


def device_facts(device: torch.device) -> dict[str, Any]:
    """What a recipe must say about the device so a replay can tell whether bits compare.

    ``kind`` is ``cpu`` or ``cuda``; for CUDA also the GPU name, compute capability, CUDA,
    cuDNN and driver versions and the determinism switches. A fact that cannot be read
    (no nvidia-smi, say) is left out rather than guessed. The GPU index is not a fact:
    two identical GPUs give identical bits.
    """
    if device.type != "cuda":
        return {"kind": "cpu"}
    index = device.index or 0
    facts: dict[str, Any] = {
        "kind": "cuda",
        "gpu_name": torch.cuda.get_device_name(index),
        "capability": ".".join(map(str, torch.cuda.get_device_capability(index))),
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),  # type: ignore[no-untyped-call]
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "env": {name: os.environ.get(name) for name in CUDA_DETERMINISM_ENV},
    }
    driver = _driver_version(index)
    if driver:
        facts["driver"] = driver
    return {k: v for k, v in facts.items() if v is not None}


def _driver_version(index: int) -> str | None:
    """The NVIDIA driver version from nvidia-smi; None when it is absent or fails."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        out = subprocess.run(  # noqa: S603 (a fixed argv, no shell)
            [smi, f"--id={index}", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0 or not out.stdout.strip():
        return None
    return out.stdout.strip().splitlines()[0].strip() or None


def describe(facts: dict[str, Any], precision: str) -> str:
    """``cuda/bf16`` or ``cpu/fp32``: the two facts that decide whether digests compare."""
    return f"{facts.get('kind', 'cpu')}/{precision or 'fp32'}"


def module_bytes(module: torch.nn.Module) -> int:
    """Bytes held by a module's parameters and buffers (what a loaded host costs)."""
    tensors = [*module.parameters(), *module.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)
