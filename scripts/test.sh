#!/usr/bin/env bash
# The test suite, offline, on CPU, in the usual environment (newest releases, scripts/install_cpu.sh), or with
# STACK=colab in the one Colab users get with Unsloth (scripts/install_colab_stack.sh), where Unsloth's own
# collator and trainer are tested too. Extra arguments go to pytest (e.g. -m "not slow" for the quick loop).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${STACK:-usual}" = colab ]; then
    bash scripts/install_colab_stack.sh
    export PATH="$PWD/.venv-colab/bin:$PATH" VIRTUAL_ENV="$PWD/.venv-colab"   # notebook kernels use it too
else
    bash scripts/install_cpu.sh
fi
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
python3 -c 'import sys, torch, transformers, trl; print(f"lane {sys.prefix}: torch {torch.__version__}, transformers {transformers.__version__}, trl {trl.__version__}")'
python3 -m pytest -q --doctest-modules qeu_vlm tests "$@"   # the docstrings' examples run too
