"""Headless commands: ``python -m qeu_vlm {synth,validate,score,replay}``."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .domain import ORIGINAL_DEFECT_PINS


def _synth_config(a):
    from .synth import SynthConfig

    pins = {"all": None, "original": ORIGINAL_DEFECT_PINS}.get(a.defect_pins, None)
    if a.defect_pins not in ("all", "original"):
        pins = tuple(a.defect_pins.split(","))
    return SynthConfig(n_train=a.n_train, n_test=a.n_test, seed=a.seed, passed_fraction=a.passed_fraction,
                       defect_pins=pins)


def cmd_synth(a):
    from .synth import write_twin

    t = time.perf_counter()
    twin = _synth_config(a).generate()
    out = write_twin(twin, a.out)
    n = a.n_train + a.n_test
    dt = time.perf_counter() - t
    print(f"wrote {n} records + pools to {out} in {dt:.1f} s ({n / dt:.0f} records/s)")
    return out


def cmd_validate(a):
    from .data import load_records

    _, report = load_records(a.source, split=a.split, collect=True)
    print(report)
    return 0 if report.ok else 1


def cmd_score(a):
    from .metrics import score_jsonl

    m = score_jsonl(a.predictions)
    text = json.dumps(m, indent=2)
    if a.out:
        Path(a.out).write_text(text)
    print(text)


def cmd_replay(a):
    """The main job: the whole replay on the synthetic twin with the tiny offline model (--full: the preset's recipe)."""
    from .config import Config
    from .pipeline import run_replay

    cfg = Config(run_dir=a.out, n_train=a.n_train, n_test=a.n_test, seed=a.seed, one_shot_first=a.one_shot_first)
    if a.smoke:
        cfg = cfg.smoke()
        cfg.n_train, cfg.n_test, cfg.max_steps, cfg.n_inspect = a.n_train, a.n_test, a.steps, a.n_inspect
        cfg.one_shot_first = a.one_shot_first
    m = run_replay(cfg)
    print(open(f"{a.out}/report.md").read())
    print(f"run folder: {a.out} ({m['seconds']} s)")
    return 0


def _run_config(a):
    from .config import Config

    path = Path(a.run) / "config.json"
    if not path.exists():
        raise SystemExit(f"{path}: no config; start the run with 'replay' or write a Config there")
    return Config.load(path)


def cmd_train(a):
    from .pipeline import train_step

    train_step(_run_config(a))


def cmd_inspect(a):
    from .pipeline import inspect_step

    print(json.dumps(inspect_step(_run_config(a), a.which)["by_shot"], indent=1))


def cmd_plot(a):
    from .pipeline import plot_step

    print(plot_step(a.run))


def cmd_learn(a):
    """The learn profile and its ablation: a from-scratch tiny VLM trained on CPU for a fixed time budget."""
    from dataclasses import replace

    from .config import Config
    from .pipeline import run_learn

    cfg = Config(run_dir=a.out, seed=a.seed).learn()
    # the step cap (and with it the cosine schedule) scales with the budget, so a longer run is not cut at 10 min's;
    # the vision warm-up shrinks with a shorter budget (it is spent inside it) but does not grow
    cfg = replace(cfg, time_budget_s=a.minutes * 60, max_steps=a.steps or round(cfg.max_steps * a.minutes / 10),
                  vision_warmup_steps=min(cfg.vision_warmup_steps, round(cfg.vision_warmup_steps * a.minutes / 10)))
    if a.n_train:
        cfg = replace(cfg, n_train=a.n_train, n_test=a.n_test, n_inspect=a.n_test)
    run_learn(cfg, ablation=not a.no_ablation)
    print(open(f"{a.out}/learn_report.md").read())


def cmd_plan(a):
    """Image tokens, sequence length, estimated peak VRAM and a T4/L4/A100 verdict, before anything runs."""
    from .planner import plan
    from .presets import PRESETS

    for name in (PRESETS if a.preset == "all" else [a.preset]):
        print(plan(name, shot=a.shot, max_pixels=a.max_pixels, batch=a.batch, lora_r=a.lora_r,
                   finetune_vision=not a.no_vision, load_in_4bit=not a.bf16))


def cmd_notebooks(a):
    from .suite import run_notebooks

    for name, sec in run_notebooks(a.run, smoke=a.smoke, only=a.only).items():
        print(f"{name}: {sec} s")
    print(f"executed copies: {Path(a.run) / 'executed'}")


def main(argv=None):
    p = argparse.ArgumentParser(prog="qeu_vlm", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)

    def twin_args(s, n_train, n_test):
        s.add_argument("--out", required=True)
        s.add_argument("--n-train", type=int, default=n_train)
        s.add_argument("--n-test", type=int, default=n_test)
        s.add_argument("--seed", type=int, default=0)
        s.add_argument("--passed-fraction", type=float, default=0.2)
        s.add_argument("--defect-pins", default="all", help="all | original (the real data's 18) | 1U,9C,...")

    twin_args(sub.add_parser("synth", help="write the synthetic twin"), 1520, 462)
    r = sub.add_parser("replay", help="the main job on the synthetic twin")
    twin_args(r, 200, 60)
    r.add_argument("--one-shot-first", type=int, default=50)
    r.add_argument("--steps", type=int, default=20)
    r.add_argument("--n-inspect", type=int, default=24, help="test records inspected per shot mode")
    r.add_argument("--full", dest="smoke", action="store_false",
                   help="the preset's full recipe (needs a GPU and the Hub) instead of the offline tiny model")
    v = sub.add_parser("validate", help="validate a dataset source and list every problem")
    v.add_argument("source")
    v.add_argument("--split", default="train")
    s = sub.add_parser("score", help="score a predictions JSONL")
    s.add_argument("predictions")
    s.add_argument("--out")
    for name, help_ in (("train", "train the run's config (resumes from its latest checkpoint)"),
                        ("plot", "learning curves from the run's log_history.json"),
                        ("inspect", "inspect and score the test slice zero- and one-shot")):
        c = sub.add_parser(name, help=help_)
        c.add_argument("--run", required=True, help="run folder holding config.json")
        if name == "inspect":
            c.add_argument("--which", choices=("base", "finetuned"), default="finetuned")
    le = sub.add_parser("learn", help="the CPU learning profile and its ablation (about 25 min with the defaults)")
    le.add_argument("--out", default="runs/learn")
    le.add_argument("--minutes", type=float, default=10, help="training budget per run, CPU-minutes")
    le.add_argument("--seed", type=int, default=0)
    le.add_argument("--no-ablation", action="store_true")
    le.add_argument("--n-train", type=int, help="smaller twin for a quick check (default: the profile's 5,000)")
    le.add_argument("--n-test", type=int, default=32)
    le.add_argument("--steps", type=int)
    pl = sub.add_parser("plan", help="estimate tokens and peak VRAM of a preset; T4/L4/A100 verdicts and fixes")
    pl.add_argument("--preset", default="all", help="a preset name, or all")
    pl.add_argument("--shot", choices=("zero", "one", "composite"), default="one")
    pl.add_argument("--max-pixels", type=int)
    pl.add_argument("--batch", type=int)
    pl.add_argument("--lora-r", type=int, default=16)
    pl.add_argument("--no-vision", action="store_true", help="LoRA on the language layers only")
    pl.add_argument("--bf16", action="store_true", help="16-bit weights instead of 4-bit")
    nb = sub.add_parser("notebooks", help="execute the numbered notebooks in order, each in a fresh kernel")
    nb.add_argument("--run", required=True, help="run folder the notebooks share (executed copies go to RUN/executed)")
    nb.add_argument("--full", dest="smoke", action="store_false", help="not smoke mode: the preset's real recipe")
    nb.add_argument("--only", nargs="*", help="notebook names to run, e.g. 01_load_data")
    a = p.parse_args(argv)
    rc = {"synth": cmd_synth, "validate": cmd_validate, "score": cmd_score, "replay": cmd_replay, "train": cmd_train,
          "plot": cmd_plot, "inspect": cmd_inspect, "notebooks": cmd_notebooks, "learn": cmd_learn, "plan": cmd_plan}[a.cmd](a)
    return rc if isinstance(rc, int) else 0


if __name__ == "__main__":
    sys.exit(main())
