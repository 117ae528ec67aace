"""The reproducibility recipe: what must match for a replay to give the same bits.

Measured on this machine kind: the thread count, the ATen CPU kernel level and the MKL code
path all change training bits. ``MKL_CBWR=AVX2,STRICT`` with ``ATEN_CPU_CAPABILITY=default``
makes results independent of the thread count at no measurable cost. Both are read when
torch initialises, so ``pin_cpu_determinism`` must run before torch is imported; importing
``unlearning`` does it. The recipe records what is actually in force, so a replay that
differs can say why.
"""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata

DETERMINISM_ENV = {"MKL_CBWR": "AVX2,STRICT", "ATEN_CPU_CAPABILITY": "default"}
_LIBRARIES = ("torch", "transformers", "peft", "tokenizers", "safetensors")


def pin_cpu_determinism() -> None:
    """Set the CPU determinism variables unless the operator chose other values."""
    for name, value in DETERMINISM_ENV.items():
        os.environ.setdefault(name, value)


def runtime_recipe() -> dict[str, object]:
    """Library versions, device, threads and CPU determinism settings in force now."""
    import torch

    return {
        "python": platform.python_version(),
        "platform": sys.platform,
        "machine": platform.machine(),
        "libraries": {name: metadata.version(name) for name in _LIBRARIES},
        "device": "cpu",
        "threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "env": {name: os.environ.get(name) for name in DETERMINISM_ENV},
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
    }
