#!/usr/bin/env bash
# CPU install: torch pinned to the local CPU wheel first, so nothing after it pulls CUDA torch; then this checkout,
# editable, unless Python already imports qeu_vlm from it. Quiet: pip speaks only when something fails.
set -euo pipefail
cd "$(dirname "$0")/.."
pip=(python3 -m pip install -q --root-user-action=ignore --disable-pip-version-check)
"${pip[@]}" torch==2.13.0
"${pip[@]}" -r requirements.txt
here="$(python3 -c 'import pathlib, qeu_vlm; print(pathlib.Path(qeu_vlm.__file__).resolve().parent.parent)' \
    2>/dev/null || true)"
if [ "$here" != "$(pwd -P)" ]; then
    "${pip[@]}" --no-deps -e .
fi
