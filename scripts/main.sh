#!/usr/bin/env bash
# The main job: the whole replay, offline, on the synthetic twin, on CPU. Writes runs/replay/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_cpu.sh
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
python3 -m qeu_vlm replay --out "${RUN_DIR:-runs/replay}" "$@"
