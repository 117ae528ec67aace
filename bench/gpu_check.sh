#!/usr/bin/env bash
# GPU check for a CUDA machine (at most 10 minutes): the gpu-marked tests, the training
# throughput benchmark (MiniLM, 12- and 24-block models, fp32 and bf16) into
# bench/results/gpu.json, and generation with a 1.1B Llama shape in bf16 (m = 1, 2, 4
# shards) into bench/results/generation_gpu.json. Needs a CUDA torch wheel in .venv (docs/operations.md).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}

"$PY" - <<'PY'
import sys
import torch
if not torch.cuda.is_available():
    sys.exit(f"gpu_check: torch {torch.__version__} sees no CUDA device; nothing to check")
print(f"gpu_check: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}")
PY

# The tests first (about a minute on one GPU), then the benchmark (a few minutes).
timeout 240 "$PY" -m pytest -q -m gpu tests/unlearning/test_gpu.py -p no:cacheprovider
timeout 240 "$PY" bench/bench_gpu.py --device "${LETHE_DEVICE:-cuda:0}"
timeout 150 "$PY" bench/bench_generation.py --large --device "${LETHE_DEVICE:-cuda:0}"
echo "gpu_check: done; numbers in bench/results/gpu.json and generation_gpu.json"
