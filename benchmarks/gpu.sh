#!/usr/bin/env bash
# One prepared script for a GPU machine that starts bare: install, run the gpu tests, then
# time the kernel alone (100M float32 resident on the device) and transform and score of
# 16M x 20 on --device cpu vs --device gpu. Prints a table; finishes within 10 minutes.
#   bash benchmarks/gpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv-gpu
. .venv-gpu/bin/activate
pip install --quiet -e ".[test,gpu]"
python -c "import cupy; print('CUDA devices:', cupy.cuda.runtime.getDeviceCount())"
pytest -q -m gpu -rs tests/test_gpu.py
python benchmarks/gpu_bench.py "$@"
