#!/usr/bin/env bash
# The quick replay: every step of a run (data, base inspection, baseline, training, inspection, report), offline on
# the twin with the smoke model, in about a minute (qeu_vlm/recipes/quick_replay.py). Its scores are noise; it shows
# that the pipeline runs. Writes runs/quick_replay/ (RUN_DIR=... for another folder).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_cpu.sh
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
python3 -m qeu_vlm replay --out "${RUN_DIR:-runs/quick_replay}" "$@"
