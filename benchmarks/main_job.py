"""The main job on several seeds: ``python -m benchmarks.main_job [--seeds 0 1 2 3 4] [--out runs/bench_main_job]``.

Each seed is the whole main job (``python -m qeu_vlm main-job --seed S``) in its own process, one after another, so
each has the machine to itself: a twin of its own, a model initialised from its own seed. Prints one row per seed
(warm-up steps, fine-tuning steps, seconds per stage, the scores before and after, the baseline) and the targets:
format >= 0.95 and judgement balanced accuracy >= 0.90 after training, within 6 minutes on 2 cores.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

MINUTES = 6


def main(argv=None) -> int:
    a = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    a.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    a.add_argument("--out", default="runs/bench_main_job")
    a.add_argument("--smoke", action="store_true", help="the main job in smoke mode (for tests)")
    args = a.parse_args(argv)
    rows, met, last = [], 0, None
    for seed in args.seeds:
        out = Path(args.out) / f"seed{seed}"
        t = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "qeu_vlm", "main-job", "--out", str(out), "--seed", str(seed)]
                              + (["--smoke"] if args.smoke else []), capture_output=True, text=True)
        wall = time.perf_counter() - t
        if not (out / "metrics.json").exists():
            print(f"seed {seed}: the main job failed (rc {done.returncode}):\n{done.stderr[-2000:]}")
            rows.append(f"| {seed} | failed | | | | | | | | |")
            continue
        m = last = json.loads((out / "metrics.json").read_text())
        ok = all(t["met"] for t in m["targets"].values()) and wall <= MINUTES * 60
        met += ok
        b, f, bl, st = m["before"], m["after"], m["baseline"], m["stages_s"]
        rows.append(
            f"| {seed} | {m['vision_warmup']['steps']} ({m['vision_warmup']['stopped']}) | {m['fine_tuning_steps']} | "
            f"{st['vision warm-up']:.0f} + {st['fine-tuning']:.0f} | {wall:.0f} | "
            f"{b['format_valid']:.2f} / {b['judgement_balanced_accuracy'] or 0:.2f} | "
            f"{f['format_valid']:.3f} | {f['judgement_balanced_accuracy'] or 0:.3f} | "
            f"{f['mode_accuracy'] or 0:.3f} / {f['position_exact'] or 0:.3f} / {f['distinct_positions']} | "
            f"{bl['judgement_balanced_accuracy'] or 0:.3f} / {bl['position_exact'] or 0:.3f} | "
            f"{'met' if ok else 'NOT met'} |")
    if last:
        print(f"\nmain job, seeds {args.seeds}, {last['date'][:10]}, {last['device']}, commit {last['commit']}, "
              f"{last['test_records']} test records each")
    print("| seed | warm-up steps | fine-tuning steps | warm-up + fine-tuning s | wall s | before: format / judgement "
          "| after: format | after: judgement bal. acc. | after: mode / position / distinct pins "
          "| baseline: judgement / position | targets |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print(f"\ntargets (format >= 0.95, judgement bal. acc. >= 0.90, <= {MINUTES} min) met on {met} of "
          f"{len(args.seeds)} seeds")
    return 0 if met == len(args.seeds) else 1


if __name__ == "__main__":
    sys.exit(main())
