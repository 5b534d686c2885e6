"""CPU benchmarks: ``python -m benchmarks.cpu [--quick]``. Prints one table with the machine and the date.

- twin generation (2,000 records, generated and written), records/s; target 2,000 in <= 60 s
- conversion to conversations, records/s
- collator throughput (TRL's vision collator + the loss mask, tiny model's processor, batch 8), batches/s
- tiny-model training, steps/s and samples/s
- batched against one-by-one greedy inspection on the same 64 samples, as a ratio measured in the same run;
  target >= 4x
- the whole quick replay (scripts/quick_replay.sh once installed), wall seconds; target <= 5 min

``--quick`` shrinks every count (for the test suite: it proves the command runs, not the figures).
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import date
from pathlib import Path


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def run(quick: bool = False) -> list[tuple]:
    import datasets

    from qeu_vlm.config import Config
    from qeu_vlm.conversation import convert, shot_plan
    from qeu_vlm.data import load_pools
    from qeu_vlm.generation import generate
    from qeu_vlm.batching import make_collator
    from qeu_vlm.conversation import with_image_list
    from qeu_vlm.tools.steps import load_step, prepare, train_step
    from qeu_vlm.twin.synth import SynthConfig, write_twin

    n_twin, n_conv, n_batches, steps, n_inspect = (200, 100, 5, 4, 8) if quick else (2000, 1000, 40, 30, 64)
    rows = []
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        dt, _ = _timed(lambda: write_twin(SynthConfig(n_train=n_twin * 3 // 4, n_test=n_twin - n_twin * 3 // 4)
                                          .generate(progress=False), d / "twin"))
        rows.append(("twin generation + write", f"{n_twin} records", f"{dt:.1f} s", f"{n_twin / dt:.0f} records/s",
                     "2,000 in <= 60 s", "met" if dt * 2000 / n_twin <= 60 else "MISSED"))

        train = datasets.load_from_disk(str(d / "twin" / "dataset"))["CYLNimages_train_1015"]
        pools = load_pools(d / "twin" / "drive")
        recs = train.select(range(min(n_conv, len(train))))
        dt, convs = _timed(lambda: convert(recs, pools, shot_plan(len(recs), one_shot_first=len(recs) // 3)))
        rows.append(("conversion", f"{len(recs)} records (1/3 one-shot)", f"{dt:.1f} s",
                     f"{len(recs) / dt:.0f} records/s", "", ""))

        cfg = replace(Config(run_dir=str(d / "run")).smoke(), n_train=max(48, 8 * steps // 4), max_steps=steps,
                      eval_steps=0, save_steps=10_000, n_eval=0, n_inspect=n_inspect, n_test=n_inspect)
        Path(cfg.run_dir).mkdir()
        model, processor = load_step(cfg, Path(cfg.run_dir), "hf")
        collator = make_collator(cfg, model, processor, "hf")
        samples = [with_image_list(c) for c in convs[:8]]
        collator(samples)                                           # warm-up
        dt, _ = _timed(lambda: [collator(samples) for _ in range(n_batches)])
        rows.append(("collator (TRL + loss mask)", f"{n_batches} batches of 8", f"{dt:.1f} s",
                     f"{n_batches / dt:.1f} batches/s", "", ""))

        prepared = prepare(cfg)
        dt, trainer = _timed(lambda: train_step(cfg, prepared))
        st = trainer.state.global_step
        bs = cfg.batch_size * cfg.grad_accum
        rows.append(("tiny-model training", f"{st} steps, batch {bs}", f"{dt:.1f} s",
                     f"{st / dt:.2f} steps/s, {st * bs / dt:.1f} samples/s", "", ""))

        infer = prepared.infer["zero"][:n_inspect]
        m, p = trainer.model, trainer.processing_class
        generate(m, p, infer[:2], batch_size=2, max_new_tokens=cfg.max_new_tokens, progress=False)   # warm-up
        t_batched, _ = _timed(lambda: generate(m, p, infer, batch_size=16, max_new_tokens=cfg.max_new_tokens,
                                               progress=False))
        t_single, _ = _timed(lambda: generate(m, p, infer, batch_size=1, max_new_tokens=cfg.max_new_tokens,
                                              progress=False))
        ratio = t_single / t_batched
        rows.append(("inspection, batched 16 vs one-by-one", f"{len(infer)} samples",
                     f"{t_batched:.1f} s vs {t_single:.1f} s", f"{ratio:.1f}x", ">= 4x",
                     "met" if ratio >= 4 else "MISSED"))

        args = ["--n-train", "48", "--n-test", "16", "--max-steps", "4", "--n-inspect", "8"] if quick else []
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
        dt, res = _timed(lambda: subprocess.run([sys.executable, "-m", "qeu_vlm", "replay", "--out", str(d / "replay")]
                                                + args, capture_output=True, text=True, env=env))
        if res.returncode:
            raise RuntimeError(f"quick replay failed:\n{res.stderr[-2000:]}")
        rows.append(("quick replay", "defaults" if not quick else "quick", f"{dt:.1f} s", "",
                     "<= 300 s", "met" if dt <= 300 else "MISSED"))
    return rows


def main(argv=None):
    from qeu_vlm.metrics import markdown_table

    a = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    a.add_argument("--quick", action="store_true")
    args = a.parse_args(argv)
    rows = run(args.quick)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"date {date.today()}{' (quick: counts shrunk, figures not comparable)' if args.quick else ''}")
    print(markdown_table(["what", "size", "time", "throughput", "target", ""], rows))
    return rows


if __name__ == "__main__":
    main()
