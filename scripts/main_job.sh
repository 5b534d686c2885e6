#!/usr/bin/env bash
# The main job: the package's pretrained VLM, fine-tuned on this CPU, learns to inspect, offline, on the rendered
# twin; before and after, beside the classic baseline, in runs/main_job/report.html (RUN_DIR=... for another folder).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_cpu.sh
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
python3 -m qeu_vlm main-job --out "${RUN_DIR:-runs/main_job}" "$@"
