"""The main job: a VLM trained from scratch on this machine's CPU learns to inspect, shown before and after.

``python -m qeu_vlm demo --out runs/demo`` (the README's first command) writes a twin of DST images, builds a
Qwen2.5-VL-style model of about 4M parameters with random weights, inspects held-out test records with it (before),
trains it, inspects the same records again (after), runs the classic baseline on them (the bar to clear), and writes
``report.html``, ``report.md`` and ``metrics.json``. The run folder is written whole or not at all (``files.staged``).

Training has a fixed length, so the outcome does not depend on the machine's speed: a vision warm-up that ends once
its head reads the judgement off the test image (``vision_warmup``, at most 800 steps), then 200 fine-tuning steps.

>>> cfg, recipe = demo_run("runs/demo"); cfg.max_steps, recipe.warmup_until, recipe.warmup_max_steps
(200, 0.98, 800)
"""
from __future__ import annotations

import json
import platform
import subprocess
import time
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from functools import partial
from pathlib import Path

from ..config import Config
from ..files import check_writable, staged
from ..metrics import fmt_metric
from .report import (HEADLINE, METRIC_MEANING, html_answer, html_escape, html_image, html_page, html_table,
                     markdown_table, show_answer)

# What the main job must show (issue: a model that visibly learns): the fine-tuned model's figures on held-out records.
TARGETS = {"format_valid": 0.95, "judgement_balanced_accuracy": 0.90}


@dataclass
class Recipe:
    """What the main job adds to a plain fine-tune, for a model that starts from random weights."""

    model_size: str = "learn"          # tiny_model.SIZES: "learn", about 4M parameters
    warmup_until: float = 0.98         # the vision warm-up ends once its head's accuracy over 50 steps reaches this
    warmup_max_steps: int = 800        # ... or after this many steps
    judgement_first_steps: int = 60    # the first fine-tuning steps supervise the answer only up to its judgement
    balance_judgement: bool = True     # passed parts repeated until both judgements are equally common

    def smoke(self) -> "Recipe":
        return replace(self, model_size="smoke", warmup_max_steps=3, judgement_first_steps=1)


def demo_run(run_dir, seed: int = 0, smoke: bool = False,
             look: str = Config.twin_look) -> tuple[Config, Recipe]:
    """The main job's ``(Config, Recipe)``: DST records at 224x154 (48 image tokens each), zero-shot, short prompts,
    all weights trained; ``smoke``: the same steps, a few records and steps (for tests)."""
    cfg = Config(run_dir=str(run_dir), seed=seed, model="tiny", backend="hf", full_finetune=True, dst_fraction=1.0,
                 twin_look=look, n_train=1500, n_test=240, n_inspect=120, n_eval=32, one_shot_first=0,
                 inspect_shots=("zero",),
                 image_size=(224, 154), max_pixels=224 * 168, max_length=512, prompt_set="short", batch_size=8,
                 grad_accum=1, learning_rate=1e-3, lr_schedule="cosine", warmup_steps=20, max_steps=200,
                 gradient_checkpointing=False, eval_steps=50, save_steps=10**6, logging_steps=10,
                 max_new_tokens=64, inspect_batch_size=16)
    if smoke:
        return replace(cfg, n_train=40, n_test=16, n_inspect=8, n_eval=8, max_steps=3, eval_steps=3,
                       logging_steps=1, max_new_tokens=24), Recipe().smoke()
    return cfg, Recipe()


def extras(recipe: Recipe, cfg: Config, model, processor, collator, train_convs, run, resumed: bool) -> dict:
    """``training.train``'s hook: the vision warm-up before the trainer starts, the judgement-first curriculum."""
    from ..batching import judgement_first
    from .vision_warmup import warm_up_vision

    warm = None
    if not resumed:
        warm = warm_up_vision(model, processor, train_convs, recipe.warmup_max_steps, cfg.learning_rate,
                              cfg.batch_size, cfg.seed, until=recipe.warmup_until)
        (Path(run) / "vision_warmup.json").write_text(json.dumps(warm, indent=1))
    callbacks = [judgement_first(collator, recipe.judgement_first_steps)] if recipe.judgement_first_steps else []
    return {"callbacks": callbacks, "optimizer": None, "warmup": warm}


def run_demo(out, seed: int = 0, smoke: bool = False, look: str = Config.twin_look) -> dict:
    """Run the main job into ``out`` (replaced whole when it finishes); returns what ``metrics.json`` holds."""
    from .steps import baseline_step, inspect_step, prepare, train_step
    from ..offline.tiny_model import DST_STATS, build_tiny_vlm

    out = check_writable(out)
    stages, t_all = {}, time.perf_counter()

    def lap(name, t):
        stages[name] = round(time.perf_counter() - t, 1)
        return time.perf_counter()

    with staged(out) as work:
        cfg, recipe = demo_run(work, seed, smoke, look)
        t = time.perf_counter()
        name = f"tiny-{recipe.model_size}"
        build_tiny_vlm(work / name, seed=seed, max_pixels=cfg.max_pixels, size=recipe.model_size,
                       **DST_STATS[cfg.twin_look])
        cfg = replace(cfg, model=str(work / name))
        label = f"{name}, from scratch"
        prepared = prepare(cfg, balance_judgement=recipe.balance_judgement)
        _ = prepared.train_convs, prepared.infer       # made here, so each stage time below holds its stage only
        t = lap("twin and conversations", t)
        before = inspect_step(cfg, "base", prepared=prepared, label=label)
        t = lap("inspect before training", t)
        baseline = baseline_step(cfg, prepared)
        t = lap("classic baseline", t)
        trainer = train_step(cfg, prepared, extras=partial(extras, recipe, cfg))
        train_stats = json.loads((work / "train_stats.json").read_text())
        warm = json.loads((work / "vision_warmup.json").read_text())
        stages["vision warm-up"] = warm["seconds"]
        stages["fine-tuning"] = train_stats["runtime_s"]
        stages["model loading and saving"] = round(time.perf_counter() - t - warm["seconds"]
                                                   - train_stats["runtime_s"], 1)
        t = time.perf_counter()
        after = inspect_step(cfg, "finetuned", trainer.model, trainer.processing_class, prepared, label=label)
        t = lap("inspect after training", t)
        test = prepared.test
        m = {
            "date": datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds"),
            "commit": _commit(), "device": _device(), "seed": seed, "smoke": smoke,
            "model": label, "parameters": sum(p.numel() for p in trainer.model.parameters()),
            "settings": {k: getattr(cfg, k) for k in ("twin_look", "n_train", "n_test", "n_inspect", "image_size",
                                                      "prompt_set", "batch_size", "learning_rate", "lr_schedule",
                                                      "max_steps")}
            | {"recipe": asdict(recipe)},
            "train_conversations": len(prepared.train_convs), "test_records": len(test),
            "test_passed": sum(r["dir"] == "OK" for r in test),
            "vision_warmup": {k: warm[k] for k in ("steps", "stopped", "accuracy", "log")},
            "fine_tuning_steps": train_stats["steps"],
            "before": before["all"], "after": after["all"], "baseline": baseline["all"],
            "answer_distribution_after": after["answer_distribution"],
            "targets": {k: {"at_least": v, "value": after["all"][k],
                            "met": after["all"][k] is not None and after["all"][k] >= v} for k, v in TARGETS.items()},
            "stages_s": stages,
        }
        m["examples"] = _examples(work, test)
        m["seconds"] = round(time.perf_counter() - t_all, 1)
        (work / "metrics.json").write_text(json.dumps(m, indent=1, default=str))
        (work / "report.md").write_text(report_md(m))
        (work / "report.html").write_text(report_html(m, work))
        # the saved settings name the final folder, so later steps (python -m qeu_vlm inspect --run) find it
        replace(cfg, run_dir=str(out), model=str(out / name)).save(work / "config.json")
    return m


def _commit() -> str:
    try:
        done = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True, timeout=10,
                              cwd=Path(__file__).parent)
        return done.stdout.strip() or "not a git checkout"
    except OSError:
        return "not a git checkout"


def _device() -> str:
    import os

    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"CPU ({platform.machine()}, {os.cpu_count()} cores, torch using {torch.get_num_threads()} threads)"


def _examples(run: Path, test, n_each: int = 2) -> list[dict]:
    """A handful of test records (defective answered right and wrong, passed ones), each drawn with the true box
    and the answered pin, with both raw answers as they were."""
    from ..plots import marked_test_image

    rows = {w: [json.loads(x) for x in (run / f"predictions_{w}_zero.jsonl").read_text().splitlines() if x]
            for w in ("base", "finetuned")}
    groups = {"defective, right pin": [], "defective, wrong pin": [], "passed": []}
    for i, r in enumerate(rows["finetuned"]):
        if r["truth"]["judgement"] != "defective":
            groups["passed"].append(i)
        else:
            right = r["parsed"]["position"] == r["truth"]["position"]
            groups["defective, right pin" if right else "defective, wrong pin"].append(i)
    out = []
    (run / "examples").mkdir(exist_ok=True)
    for group, idx in groups.items():
        for i in idx[:n_each]:
            after = rows["finetuned"][i]
            png = run / "examples" / f"record_{i + 1:03d}.png"
            marked_test_image(test[i], after["parsed"]["position"], png,
                              title=f"test record {i + 1}: true {after['truth']['position']}, "
                                    f"answered {after['parsed']['position'] or 'no pin'}")
            out.append({"group": group, "record": i + 1, "figure": str(png.relative_to(run)),
                        "truth": after["truth"], "before": rows["base"][i]["text"], "after": after["text"]})
    return out


def _score_rows(m: dict) -> list[list]:
    return [[who, *(fmt_metric(m[key].get(k)) for k in HEADLINE)]
            for who, key in (("before training", "before"), ("after training", "after"),
                             ("classic baseline", "baseline"))]


def _target_lines(m: dict) -> list[str]:
    return [f"{k} >= {t['at_least']}: {fmt_metric(t['value'])} ({'met' if t['met'] else 'NOT met'})"
            for k, t in m["targets"].items()]


def _summary(m: dict) -> str:
    w = m["vision_warmup"]
    return (f"A {m['model']} model ({m['parameters'] / 1e6:.1f}M parameters) trained on "
            f"{m['train_conversations']} conversations of the {m['settings'].get('twin_look', 'schematic')} synthetic "
            f"twin's DST images: a vision warm-up of "
            f"{w['steps']} steps (ended by {'its criterion' if w['stopped'] == 'criterion' else 'its step cap'}, "
            f"head accuracy {w['accuracy']}), then {m['fine_tuning_steps']} fine-tuning steps. Scored zero-shot on "
            f"{m['test_records']} held-out test records ({m['test_passed']} passed, "
            f"{m['test_records'] - m['test_passed']} defective), {m['seconds']:.0f} s in all.")


def report_md(m: dict) -> str:
    """The main job's report as Markdown (``report.html`` is the same with its figures)."""
    lines = ["# qeu_vlm main job: a VLM learns to inspect", "", _summary(m), "",
             markdown_table(["model", *HEADLINE], _score_rows(m)), "", "Targets (after training):", "",
             *[f"- {line}" for line in _target_lines(m)], "",
             markdown_table(["stage", "seconds"], list(m["stages_s"].items())), "",
             f"Run {m['date']}, commit {m['commit']}, {m['device']}, seed {m['seed']}.", "",
             "Examples (raw answers as the model wrote them):", ""]
    for e in m["examples"]:
        lines += [f"- record {e['record']} ({e['group']}), true position {e['truth']['position']}:", "",
                  "  ```text", *["  " + x for x in show_answer(e["after"]).splitlines()], "  ```", ""]
    return "\n".join(lines) + "\n"


def report_html(m: dict, run: Path) -> str:
    """The main job's report as one self-contained page: figures embedded, every answer escaped."""
    met = "".join(f'<li class="{"met" if t["met"] else "missed"}">{html_escape(line)}</li>'
                  for line, t in zip(_target_lines(m), m["targets"].values()))
    dist = sorted(m["answer_distribution_after"].items(), key=lambda kv: -kv[1])
    parts = [
        f"<p>{html_escape(_summary(m))}</p>",
        "<h2>1. Before and after, beside the classic baseline</h2>",
        html_table(["model", *(k.replace("_", " ") for k in HEADLINE)], _score_rows(m)),
        f"<p>Targets for the trained model:</p><ul>{met}</ul>",
        "<details><summary>What the columns mean</summary>"
        + html_table(["metric", "meaning"], list(METRIC_MEANING.items())) + "</details>",
        "<p>Positions the trained model answered (answers per position): "
        + html_escape(", ".join(f"{'no readable pin' if k in (None, 'None') else k}: {v}" for k, v in dist))
        + "</p>",
        "<h2>2. Learning curves</h2>", html_image(run / "learning_curves.png", "learning curves"),
        f"<p>For its first {m['settings']['recipe']['judgement_first_steps']} steps the loss covers the answer up to "
        "its judgement only; the jump after them is the defect mode and position lines joining it. Before "
        "fine-tuning, the vision warm-up trained the image encoder to tell passed from defective parts:</p>",
        html_table(["vision warm-up step", "head loss (last 50 steps)", "head accuracy (last 50 steps)"],
                   [[e["step"], e["loss"], e["accuracy"]] for e in m["vision_warmup"]["log"]]),
        "<h2>3. Errors after training</h2>",
        html_image(run / "evaluation_finetuned.png", "confusion matrix and error heatmap after training"),
        "<h2>4. Examples</h2><p>Green box: the bent pin. Red cross: the pin the trained model named. The answers are "
        "shown as the models wrote them.</p><div class=\"examples\">",
    ]
    for e in m["examples"]:
        parts.append(f"<div><b>record {e['record']}</b>: {html_escape(e['group'])}"
                     + html_image(run / e["figure"], f"test record {e['record']}")
                     + "after training:" + html_answer(e["after"]) + "before training:" + html_answer(e["before"])
                     + "</div>")
    parts += ["</div>", "<h2>5. What ran</h2>",
              html_table(["setting", "value"], [["date", m["date"]], ["commit", m["commit"]], ["device", m["device"]],
                                    ["seed", m["seed"]], ["model", f"{m['model']}, {m['parameters']:,} parameters"],
                                    *[[k, json.dumps(v) if isinstance(v, dict) else v]
                                      for k, v in m["settings"].items()]]),
              html_table(["stage", "seconds"], list(m["stages_s"].items()) + [["all", m["seconds"]]])]
    return html_page("qeu_vlm main job: a VLM learns to inspect", parts)
