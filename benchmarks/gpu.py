"""GPU benchmark: step time, tokens/s and peak VRAM for zero- and one-shot batches, per preset and backend.

    python -m benchmarks.gpu --presets qwen2.5-vl-3b,qwen3-vl-4b --backends unsloth,hf [--t4] [--steps 6]
    python -m benchmarks.gpu --tiny --backends hf --steps 2       # the CPU path: the tiny model, end to end

Nothing is downloaded: each preset's model is built from its real architecture (``qeu_vlm.planner.ARCHS``) with
random weights and saved locally first, with the offline image-only processor. Both backends then train it
through ``qeu_vlm.train.train`` on the same synthetic one-shot/zero-shot batches, side by side in one run, and the
planner's estimate is printed beside each measured peak. ``--t4`` emulates a free Colab T4: the process is capped
at 15 GiB and bf16 is off (fp16).

Every preset's family is built: Qwen2.5-VL, Qwen3-VL, Llama-3.2-Vision (Mllama) and Pixtral (Llava + Pixtral
vision), each with the published parameter count to within 5% (checked on the meta device in the tests), the
offline BPE tokenizer and the family's chat template. Pixtral's processor needs torchvision, so on a CPU machine
without it Pixtral is reported as not built. ``--shrink`` builds the same families at toy dimensions, which runs
every builder, collator and loss mask end to end on CPU:

    python -m benchmarks.gpu --presets qwen3-vl-2b,llama-3.2-11b-vision,pixtral-12b --shrink --backends hf --steps 1
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from dataclasses import replace
from datetime import date
from pathlib import Path

from qeu_vlm.random_models import build_random

GIB = 2**30


def measure(cfg, convs, run: Path, preset: str | None = None) -> dict:
    import torch

    from qeu_vlm.planner import Setting, estimate
    from qeu_vlm.train import train

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    trainer = train(cfg, convs, [], run, resume=False)
    stats = json.loads((run / "train_stats.json").read_text())
    peak = torch.cuda.max_memory_reserved() / GIB if torch.cuda.is_available() else None
    out = {"steps": stats["steps"], "s/step": round(stats["runtime_s"] / max(1, stats["steps"]), 3),
           "samples/s": stats["samples_per_s"], "tokens/s": round(stats["samples_per_s"] * stats["tokens_per_sample"]),
           "peak GiB": round(peak, 2) if peak else None}
    if preset:
        shot = "one" if cfg.one_shot_first else "zero"
        out["planner GiB"] = estimate(Setting(preset, shot, cfg.max_pixels, cfg.batch_size, cfg.grad_accum)).peak_gib
    del trainer
    return out


def main(argv=None):
    import torch

    from qeu_vlm.config import Config
    from qeu_vlm.pipeline import prepare
    from qeu_vlm.presets import get_preset
    from qeu_vlm.train import TrainingError

    a = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    a.add_argument("--presets", default="qwen2.5-vl-3b")
    a.add_argument("--backends", default="unsloth,hf")
    a.add_argument("--steps", type=int, default=6)
    a.add_argument("--t4", action="store_true", help="cap the process at 15 GiB and use fp16 (no bf16)")
    a.add_argument("--tiny", action="store_true", help="the tiny offline model instead of the presets (CPU check)")
    a.add_argument("--shrink", action="store_true",
                   help="each preset's family at toy dimensions: a CPU check of every builder and its collator")
    a.add_argument("--out", help="folder for the random models and runs (default: a temporary one)")
    args = a.parse_args(argv)

    if args.t4 and torch.cuda.is_available():
        torch.cuda.set_per_process_memory_fraction(min(1.0, 15 * GIB / torch.cuda.get_device_properties(0).total_memory))
        torch.cuda.is_bf16_supported = lambda *a, **k: False        # what a T4 reports: fp16 everywhere
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores)"
    root = Path(args.out or tempfile.mkdtemp(prefix="qeu_gpu_bench_"))
    rows = []
    for preset in (["tiny"] if args.tiny else args.presets.split(",")):
        for shot in ("zero", "one"):
            for backend in args.backends.split(","):
                name = f"{preset}-{shot}-{backend}"
                run = root / name
                run.mkdir(parents=True, exist_ok=True)
                base = Config(run_dir=str(run), n_train=16, n_test=4, n_inspect=2, n_eval=0, eval_steps=0,
                              save_steps=10_000, max_steps=args.steps, backend=backend,
                              one_shot_first=16 if shot == "one" else 0, logging_steps=1)
                if preset == "tiny":
                    cfg = replace(base.smoke(), n_train=16, max_steps=args.steps, eval_steps=0, n_eval=0,
                                  backend=backend, one_shot_first=base.one_shot_first, save_steps=10_000)
                else:
                    p = get_preset(preset)
                    folder = root / f"model-{preset}"
                    try:
                        if not (folder / "config.json").exists():
                            build_random(preset, folder, p.max_pixels, shrink=args.shrink)
                    except (NotImplementedError, ImportError) as e:      # e.g. Pixtral's processor needs torchvision
                        rows.append((name, {"error": f"not built: {str(e).strip().splitlines()[0]}"}))
                        continue
                    cfg = replace(base, model=str(folder), max_pixels=p.max_pixels, max_length=p.max_length,
                                  batch_size=p.batch_size, grad_accum=p.grad_accum, load_in_4bit=p.load_in_4bit)
                try:
                    prepared = prepare(cfg)
                    rows.append((name, measure(cfg, prepared.train_convs, run, None if preset == "tiny" or args.shrink else preset)))
                except (TrainingError, RuntimeError, ImportError) as e:   # e.g. CUDA OOM under --t4, no unsloth
                    rows.append((name, {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"}))
    print(f"device: {device}; date {date.today()}; torch {torch.__version__}; {platform.python_version()}"
          + ("; T4 emulation: 15 GiB cap, fp16" if args.t4 else ""))
    keys = ["steps", "s/step", "samples/s", "tokens/s", "peak GiB", "planner GiB"]
    print("| run | " + " | ".join(keys) + " | error |")
    print("|---|" + "---|" * (len(keys) + 1))
    for name, r in rows:
        print(f"| {name} | " + " | ".join(str(r.get(k, "")) for k in keys) + f" | {r.get('error', '')} |")
    for preset in {n.rsplit("-", 2)[0] for n, _ in rows}:
        for shot in ("zero", "one"):
            u = dict(rows).get(f"{preset}-{shot}-unsloth", {})
            h = dict(rows).get(f"{preset}-{shot}-hf", {})
            if u.get("samples/s") and h.get("samples/s"):
                print(f"{preset} {shot}-shot: unsloth / hf throughput = {u['samples/s'] / h['samples/s']:.2f}x "
                      f"(target >= 1.8x)")
    return rows


if __name__ == "__main__":
    main()
