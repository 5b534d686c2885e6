#!/usr/bin/env bash
# The Colab lane's environment: a venv (.venv-colab) with the package set `pip install unsloth==2026.10.9`
# resolves (requirements-colab.txt), torch held at the CPU wheel and no torchvision. Installed --no-deps from the
# pins, so nothing is re-resolved; this package goes in --no-deps too, as the notebooks' install cell does.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv-colab
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q torch==2.13.0
"$venv/bin/python" -m pip install -q --no-deps -r requirements-colab.txt
"$venv/bin/python" -m pip install -q --no-deps -e .
