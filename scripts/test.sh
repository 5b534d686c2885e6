#!/usr/bin/env bash
# The test suite, offline, on CPU, in the usual environment (newest releases, scripts/install_cpu.sh), or with
# STACK=colab in the one Colab users get with Unsloth (scripts/install_colab_stack.sh), where Unsloth's own
# collator and trainer are tested too, or with STACK=vllm in vLLM's CPU build (scripts/install_vllm_stack.sh), where
# the vLLM tests run (tests/test_vllm.py). Extra arguments go to pytest (e.g. -m "not slow" for the quick loop).
set -euo pipefail
cd "$(dirname "$0")/.."
tests=(--doctest-modules qeu_vlm tests)           # the docstrings' examples run too
if [ "${STACK:-usual}" = colab ]; then
    bash scripts/install_colab_stack.sh
    export PATH="$PWD/.venv-colab/bin:$PATH" VIRTUAL_ENV="$PWD/.venv-colab"   # notebook kernels use it too
elif [ "${STACK:-usual}" = vllm ]; then
    bash scripts/install_vllm_stack.sh
    export PATH="$PWD/.venv-vllm/bin:$PATH" VIRTUAL_ENV="$PWD/.venv-vllm"
    tests=(tests/test_vllm.py)                    # the rest runs in the other two lanes
    python3 -c 'import vllm; print(f"vllm {vllm.__version__}")'    # fails the lane, loudly, where it does not import
else
    bash scripts/install_cpu.sh
fi
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
python3 -c 'import sys, torch, transformers, trl; print(f"lane {sys.prefix}: torch {torch.__version__}, transformers {transformers.__version__}, trl {trl.__version__}")'
python3 -m pytest -q "${tests[@]}" "$@"
