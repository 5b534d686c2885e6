#!/usr/bin/env bash
# CPU install: torch pinned to the local CPU wheel first, so nothing after it pulls CUDA torch.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q torch==2.13.0
python3 -m pip install -q -r requirements.txt
python3 -m pip install -q --no-deps -e .
