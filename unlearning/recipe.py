"""The reproducibility recipe: what must match for a replay to give the same bits.

Measured on this machine kind: the thread count, the ATen CPU kernel level and the MKL code
path all change training bits. ``MKL_CBWR=AVX2,STRICT`` with ``ATEN_CPU_CAPABILITY=default``
makes results independent of the thread count at no measurable cost. Both are read when
torch initialises, so ``pin_cpu_determinism`` must run before torch is imported; importing
``unlearning`` does it (together with the cuBLAS workspace variable CUDA needs, see
``unlearning.device``). The recipe records what is actually in force, so a replay that
differs can say why: on CUDA also the GPU, CUDA, cuDNN and driver versions.
"""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

DETERMINISM_ENV = {"MKL_CBWR": "AVX2,STRICT", "ATEN_CPU_CAPABILITY": "default"}
# cuBLAS picks its workspace (and with it reduction order) when its handle is created.
CUDA_DETERMINISM_ENV = {"CUBLAS_WORKSPACE_CONFIG": ":4096:8"}
_LIBRARIES = ("torch", "transformers", "peft", "tokenizers", "safetensors", "pillow")


def pin_cpu_determinism() -> None:
    """Set the CPU (and CUDA) determinism variables unless the operator chose others.

    The cuBLAS variable is set here too because it must precede any CUDA work; it changes
    nothing on the CPU. It is set without importing torch (``unlearning.device`` does).
    """
    for name, value in {**DETERMINISM_ENV, **CUDA_DETERMINISM_ENV}.items():
        os.environ.setdefault(name, value)


def runtime_recipe(device: torch.device | None = None) -> dict[str, object]:
    """Library versions, device, threads and determinism settings in force now.

    ``device`` is the kind (``cpu`` or ``cuda``), as it always was; a CUDA device adds a
    ``cuda`` entry with the facts of ``unlearning.device.device_facts``. A CPU recipe is
    exactly what it was before devices existed.
    """
    import torch

    from unlearning.device import device_facts

    facts = device_facts(device if device is not None else torch.device("cpu"))
    recipe: dict[str, object] = {
        "python": platform.python_version(),
        "platform": sys.platform,
        "machine": platform.machine(),
        "libraries": {name: metadata.version(name) for name in _LIBRARIES},
        "device": facts.pop("kind"),
        "threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "env": {name: os.environ.get(name) for name in DETERMINISM_ENV},
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
    }
    if facts:
        recipe["cuda"] = facts
    return recipe
