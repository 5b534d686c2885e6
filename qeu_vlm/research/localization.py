"""Localisation attempts on CPU: ``python -m qeu_vlm.research.localization ATTEMPT [ATTEMPT ...]``.

Each attempt is the learn profile (``learn.learn_run``) with one change, trained on the same twin for the same
CPU budget and scored on the same held-out DST records. Results accumulate in
``runs/localization/results.json``, and the table is printed for ``benchmarks/RESULTS.md``, failures included.
"""
from __future__ import annotations

import argparse
import json
from datetime import date
from pathlib import Path

# name -> (what changes, Config or LearnSettings fields). Every attempt ran on the profile of 2026-11-21 (the
# schematic twin, a 10-minute clock, a fixed 500-step vision warm-up): FIRST keeps it. The attempts made before the
# warm-up became the profile's default ran without it; OLD keeps them as they ran.
FIRST = {"twin_look": "schematic", "max_steps": 1200, "time_budget_s": 600, "vision_warmup_steps": 500,
         "vision_warmup_until": None}
OLD = {**FIRST, "vision_warmup_steps": 0}
ATTEMPTS = {
    "default": ("the learn profile as it was (RoPE theta 1e4, mRoPE sections t4/h6/w6), no vision warm-up", OLD),
    "rope-theta-10": ("RoPE theta 10: every rotary frequency faster, so neighbouring image columns differ",
                      {**OLD, "tiny_overrides": {"rope_theta": 10.0}}),
    "mrope-width": ("mRoPE sections t2/h4/w10 with theta 100: more and faster frequencies for the width axis",
                    {**OLD, "tiny_overrides": {"rope_theta": 100.0, "mrope_section": [2, 4, 10]}}),
    "pin-per-token": ("images at 308x210, so one merged 28-px token spans about one pin pitch (88 tokens/image)",
                      {**OLD, "image_size": (308, 210), "max_pixels": 308 * 224}),
    "constant-lr": ("constant learning rate after warm-up instead of cosine decay",
                    {**OLD, "lr_schedule": "constant_with_warmup"}),
    "long-30": ("the default, trained 30 CPU-minutes", {**OLD, "time_budget_s": 1800, "max_steps": 3600}),
    "long-60": ("the default, trained 60 CPU-minutes", {**OLD, "time_budget_s": 3600, "max_steps": 7200}),
    "long-30-lr5e-4": ("30 CPU-minutes at the rate that let the 60-minute run learn (5e-4)",
                       {**OLD, "time_budget_s": 1800, "max_steps": 3600, "learning_rate": 5e-4}),
    "long-60-lr5e-4": ("60 CPU-minutes at half the peak rate (5e-4): long-60 blew up at 0.0009",
                       {**OLD, "time_budget_s": 3600, "max_steps": 7200, "learning_rate": 5e-4}),
    "warmup-30": ("the profile with its vision warm-up (500 steps, inside the budget), trained 30 CPU-minutes",
                  {**FIRST, "time_budget_s": 1800, "max_steps": 3600}),
}


def learn_config(run_dir, twin: str, **changes):
    """The learn profile's ``(Config, LearnSettings)`` on an existing learn twin (``TWIN/dataset``,
    ``TWIN/drive``), with ``changes`` (``tiny_overrides`` are added to the profile's own)."""
    from .learn import learn_run

    return learn_run(run_dir, data=f"{twin}/dataset", pools=f"{twin}/drive", **changes)


def main(argv=None):
    from .learn import run_learn

    a = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    a.add_argument("attempts", nargs="+", choices=list(ATTEMPTS) + ["table"])
    a.add_argument("--root", default="runs/localization")
    a.add_argument("--twin", default="runs/learn/twin", help="the learn profile's twin, shared by every attempt")
    args = a.parse_args(argv)
    root = Path(args.root)
    root.mkdir(parents=True, exist_ok=True)
    results_path = root / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    for name in args.attempts:
        if name == "table":
            continue
        what, changes = ATTEMPTS[name]
        cfg, lab = learn_config(root / name, args.twin, **changes)
        m = run_learn(cfg, lab, ablation=False, baseline=False)["learn"]
        results[name] = {"what": what, "date": str(date.today()), "train_s": m["train"]["runtime_s"],
                         "steps": m["train"]["steps"], "scores": {k: m["scores"][k] for k in (
                             "format_valid", "judgement_balanced_accuracy", "mode_accuracy", "position_exact",
                             "within_one_pin", "distinct_positions")}}
        results_path.write_text(json.dumps(results, indent=1))
    cols = ("format_valid", "judgement_balanced_accuracy", "mode_accuracy", "position_exact", "within_one_pin",
            "distinct_positions")
    print("| attempt | change | steps | train s | " + " | ".join(cols) + " |")
    print("|---|---|---|---|" + "---|" * len(cols))
    for name, r in results.items():
        vals = [r["scores"][k] for k in cols]
        print(f"| {name} | {r['what']} | {r['steps']} | {r['train_s']} | "
              + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in vals) + " |")


if __name__ == "__main__":
    main()
