#!/usr/bin/env bash
# The test suite, offline, on CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_cpu.sh
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
python3 -m pytest -q --doctest-modules qeu_vlm tests "$@"   # the docstrings' examples run too
