"""The learn profile: the offline pretrained ~4M-parameter Qwen2.5-VL fine-tuned on CPU, with its ablation, side by
side.

The proof that the pipeline teaches a VLM to inspect and to localise, on a machine without a GPU (README.md in this
folder tells the story). ``python -m qeu_vlm learn`` runs it.

The profile is a number of steps, not a clock, so a seed gives the same model on a fast machine or a slow one (a
slow one takes longer): a vision warm-up of 150 steps, then 750 fine-tuning steps on 5,000 records (``--steps``).
The recipe is ``recipes/learn.py``; ``learn_run(...)`` gives its settings:

>>> cfg, lab = learn_run("runs/learn")
>>> cfg.max_steps, cfg.twin_look, lab.start, lab.vision_warmup_steps, lab.time_budget_s
(750, 'rendered', 'pretrained', 150, None)
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import fields, replace
from pathlib import Path

from ..config import Config
from ..metrics import fmt_metric, markdown_table
from ..offline.tiny_model import DST_STATS
from ..recipes.learn import CONFIG, LearnSettings
from ..tools.steps import balanced_train_convs, baseline_step, inspect_step, loss_summary, prepare

__all__ = ["LearnSettings", "learn_run", "learn_model", "train_learn", "run_learn", "learn_report"]


def learn_run(run_dir, seed: int = 0, **changes) -> tuple[Config, LearnSettings]:
    """The profile's ``(Config, LearnSettings)`` from its recipe (``recipes/learn.py``). ``changes`` go to whichever
    of the two has the field (``tiny_overrides`` are added to the profile's own)."""
    cfg = Config(run_dir=str(run_dir), seed=seed, **CONFIG)
    mine = {f.name for f in fields(LearnSettings)}
    cfg = replace(cfg, **{k: v for k, v in changes.items() if k not in mine})
    lab = LearnSettings(tiny_overrides=dict(DST_STATS[cfg.twin_look]))
    if "tiny_overrides" in changes:
        changes["tiny_overrides"] = {**lab.tiny_overrides, **changes["tiny_overrides"]}
    return cfg, replace(lab, **{k: v for k, v in changes.items() if k in mine})


def learn_model(cfg: Config, lab: LearnSettings) -> Config:
    """Point the config at the model to fine-tune: the offline pretrained one, or (``start="scratch"``) one built
    from random weights into the run folder (once)."""
    from ..offline.pretrain import PRETRAINED
    from ..offline.tiny_model import build_tiny_vlm

    if lab.start == "pretrained":
        return replace(cfg, model=str(PRETRAINED))
    if lab.start != "scratch":
        raise ValueError(f"LearnSettings.start must be 'pretrained' or 'scratch', got {lab.start!r}")
    path = Path(cfg.run_dir) / "tiny_model"
    if not (path / "config.json").exists():
        build_tiny_vlm(path, seed=cfg.seed, max_pixels=cfg.max_pixels, size=lab.tiny_size, **lab.tiny_overrides)
    return replace(cfg, model=str(path))


def learn_prepared(cfg: Config, lab: LearnSettings):
    """The run's data and conversations, ablated when the settings say so (``hooks.Ablated``)."""
    from .hooks import Ablated

    p = prepare(cfg)
    return Ablated.of(p, lab.ablation) if lab.ablation else p


def train_learn(cfg: Config, lab: LearnSettings, prepared=None, resume: bool = True, callbacks=()):
    """Train with the profile's options (balance, warm-up, budget, curriculum, tower rate; ``hooks.fine_tune``);
    ``(cfg, prepared, trainer)``."""
    from .hooks import fine_tune

    cfg = learn_model(cfg, lab)
    prepared = prepared or learn_prepared(cfg, lab)
    train_convs = balanced_train_convs(prepared) if lab.balance_judgement else prepared.train_convs
    return cfg, prepared, fine_tune(cfg, lab, prepared, train_convs, resume, callbacks)


def run_learn(cfg: Config, lab: LearnSettings, ablation: bool = True, baseline: bool = True) -> dict:
    """Train from scratch on CPU, inspect the held-out DST records, and (``ablation``) the same with every test
    image replaced by its reference, side by side in ``learn_report.md``."""
    t0 = time.perf_counter()
    out, runs = {}, {"learn": (cfg, lab)}
    if ablation:
        twin = Path(cfg.run_dir) / "twin"
        runs["ablation"] = (replace(cfg, run_dir=str(Path(cfg.run_dir) / "ablation"), data=str(twin / "dataset"),
                                    pools=str(twin / "drive")), replace(lab, ablation="reference-as-test"))
    for name, (c, settings) in runs.items():
        Path(c.run_dir).mkdir(parents=True, exist_ok=True)
        c, prepared, trainer = train_learn(c, settings)
        scores = inspect_step(c, "finetuned", trainer.model, trainer.processing_class, prepared)
        out[name] = {"scores": scores["all"], "answer_distribution": scores["answer_distribution"],
                     "train": json.loads((prepared.run / "train_stats.json").read_text()),
                     "loss": loss_summary(prepared.run), "test_records": len(prepared.test)}
        warm = prepared.run / "vision_warmup.json"
        if warm.exists():
            out[name]["warmup"] = {k: v for k, v in json.loads(warm.read_text()).items() if k != "log"}
        if name == "learn" and baseline:
            out["baseline"] = baseline_step(c, prepared, fit_on=settings.baseline_fit_on)["all"]
    out["seconds"], out["look"] = round(time.perf_counter() - t0, 1), cfg.twin_look
    run = Path(cfg.run_dir)
    (run / "learn_metrics.json").write_text(json.dumps(out, indent=1, default=str))
    (run / "learn_report.md").write_text(learn_report(out))
    return out


LEARN_TARGETS = {"format_valid": (">=", 0.95), "judgement_balanced_accuracy": (">=", 0.95),
                 "position_exact": (">=", 0.90)}
ABLATION_TARGET = ("judgement_balanced_accuracy", "<=", 0.60)


def _meets(value, op, target) -> bool:
    return value is not None and (value >= target if op == ">=" else value <= target)


def _ablation_verdict(learn: float, ablation: float, learned: bool) -> str:
    t = ABLATION_TARGET[2]
    if ablation > t:
        return "the model answers as well without the defect: it does not use the test image"
    if learned:
        return "the model uses the test image"
    if learn > t:
        return (f"the model reads the test image ({fmt_metric(learn)} with it, {fmt_metric(ablation)} without), "
                "though it has not reached its target")
    return "proves nothing while the learn run itself is at chance level"


def learn_report(m: dict) -> str:
    cols = ("format_valid", "judgement_balanced_accuracy", "mode_accuracy", "position_exact", "within_one_pin",
            "distinct_positions")
    rows = []
    for name in ("learn", "ablation"):
        if name in m:
            r, w = m[name], m[name].get("warmup")
            rows.append([name, f"{w['steps']} ({fmt_metric(w['accuracy'])})" if w else "-", w["seconds"] if w else "-",
                         r["train"]["steps"], r["train"]["runtime_s"], fmt_metric(r["loss"]["last_train_loss"]),
                         *(fmt_metric(r["scores"][k]) for k in cols)])
    if "baseline" in m:
        rows.append(["classic baseline", "-", "-", "-", "-", "-", *(fmt_metric(m["baseline"][k]) for k in cols)])
    lines = ["# qeu_vlm learn profile: a tiny VLM fine-tuned on CPU", "",
             f"{m['learn']['test_records']} held-out DST records of the {m.get('look', 'schematic')} twin inspected "
             f"zero-shot; {m['seconds']} s in all.", "",
             markdown_table(["run", "warm-up steps (head acc.)", "warm-up s", "steps", "train s", "last train loss",
                             *cols], rows),
             "", "Targets:"]
    for k, (op, t) in LEARN_TARGETS.items():
        v = m["learn"]["scores"][k]
        lines.append(f"- learn {k} {op} {t}: {fmt_metric(v)} ({'met' if _meets(v, op, t) else 'NOT met'})")
    if "ablation" in m:
        k, op, t = ABLATION_TARGET
        v = m["ablation"]["scores"][k]
        learned = _meets(m["learn"]["scores"][k], *LEARN_TARGETS[k])
        lines.append(f"- ablation (test image replaced by its reference) {k} {op} {t}: {fmt_metric(v)} "
                     f"({'met' if _meets(v, op, t) else 'NOT met'}): "
                     + _ablation_verdict(m["learn"]["scores"][k], v, learned))
    lines += [
        "",
        "Answer distribution (predicted position: count), so a collapsed model cannot hide behind its loss:",
        "",
    ]
    for name in ("learn", "ablation"):
        if name in m:
            lines.append(f"- {name}: {json.dumps(m[name]['answer_distribution'])}")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    """``python -m qeu_vlm learn``: the profile and its ablation, side by side."""
    p = argparse.ArgumentParser(prog="qeu_vlm learn", description=main.__doc__)
    p.add_argument("--out", default="runs/learn")
    p.add_argument("--steps", type=int, default=CONFIG["max_steps"], help="fine-tuning steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--start", choices=("pretrained", "scratch"), default=LearnSettings.start,
                   help="the offline pretrained model, or the same model from random weights")
    p.add_argument("--warmup-steps", type=int, default=LearnSettings.vision_warmup_steps,
                   help="the vision warm-up's steps")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--no-ablation", action="store_true")
    p.add_argument("--n-train", type=int, help="smaller twin for a quick check (default: the profile's 5,000)")
    p.add_argument("--n-test", type=int, default=32)
    a = p.parse_args(argv)
    for name in ("steps", "seed", "warmup_steps", "threads", "n_test"):
        v = getattr(a, name)
        if v is not None and v < (0 if name in ("seed", "warmup_steps") else 1):
            p.error(f"--{name.replace('_', '-')} must be >= {0 if name in ('seed', 'warmup_steps') else 1}, got {v}")
    if a.threads:
        import torch

        torch.set_num_threads(a.threads)
    # the cosine schedule runs over the steps, so a longer profile is not a shorter one cut later
    cfg, lab = learn_run(a.out, seed=a.seed, max_steps=a.steps, vision_warmup_steps=a.warmup_steps, start=a.start)
    if a.n_train:
        cfg = replace(cfg, n_train=a.n_train, n_test=a.n_test, n_inspect=a.n_test)
    run_learn(cfg, lab, ablation=not a.no_ablation)
    print((Path(a.out) / "learn_report.md").read_text())
    return 0
