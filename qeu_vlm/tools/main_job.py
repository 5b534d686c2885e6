"""The main job: a VLM trained from scratch on this machine's CPU learns to inspect, shown before and after.

``python -m qeu_vlm main-job --out runs/main_job`` (the README's first command, ``scripts/main_job.sh``) writes a twin
of DST images, builds a Qwen2.5-VL-style model of about 4M parameters with random weights, inspects held-out test
records with it (before), trains it, inspects the same records again (after), runs the classic baseline on them (the
bar to clear), and writes ``report.html``, ``report.md`` and ``metrics.json``. The run folder is written whole or not
at all (``files.staged``). The recipe is ``recipes/main_job.py``.

Training has a fixed length, so the outcome does not depend on the machine's speed: a vision warm-up that ends once
its head reads the judgement off the test image (``vision_warmup``, at most 800 steps), then 200 fine-tuning steps.

>>> cfg, job = main_job_config("runs/main_job"); cfg.max_steps, job.warmup_until, job.warmup_max_steps
(200, 0.98, 800)
"""
from __future__ import annotations

import json
import platform
import subprocess
import time
from dataclasses import asdict, replace
from datetime import datetime, timezone
from pathlib import Path

from ..config import Config
from ..files import check_writable, staged
from ..recipes.main_job import CONFIG, IN_SMOKE_MODE, MainJob
from .report import main_job_html, main_job_md

# What the main job must show (a model that visibly learns): the fine-tuned model's figures on held-out records.
TARGETS = {"format_valid": 0.95, "judgement_balanced_accuracy": 0.90}


def main_job_config(run_dir, seed: int = 0, smoke: bool = False,
                    look: str = Config.twin_look) -> tuple[Config, MainJob]:
    """The main job's ``(Config, MainJob)`` from its recipe; ``smoke``: the same steps, small (``Config.smoke``)."""
    cfg = Config(run_dir=str(run_dir), seed=seed, twin_look=look, **CONFIG)
    if smoke:
        return cfg.smoke(), replace(MainJob(), **IN_SMOKE_MODE)
    return cfg, MainJob()


def fine_tune(cfg: Config, job: MainJob, prepared, train_convs: list):
    """The main job's training: the core's calls in order, with the vision warm-up before the trainer starts and the
    judgement-first curriculum as the trainer's collator and callback. Returns ``(trainer, warm-up stats)``."""
    from .. import backend as backends
    from ..batching import make_collator
    from ..training import last_checkpoint, train
    from .steps import load_step, plot_step, preflight_step
    from .vision_warmup import judgement_first, warm_up_vision

    backend = backends.choose(cfg.backend)
    run = prepared.run
    model, processor = load_step(cfg, run, backend)
    collator = make_collator(cfg, model, processor, backend)
    callbacks = []
    if job.judgement_first_steps:
        collator = judgement_first(collator, job.judgement_first_steps)
        callbacks.append(collator)
    lengths = preflight_step(cfg, prepared, collator, backend, train_convs)
    warm = None
    if last_checkpoint(run) is None:              # a resumed run's checkpoint already holds the warmed-up tower
        warm = warm_up_vision(model, processor, train_convs, job.warmup_max_steps, cfg.learning_rate, cfg.batch_size,
                              cfg.seed, until=job.warmup_until)
        (run / "vision_warmup.json").write_text(json.dumps(warm, indent=1))
    trainer = train(cfg, train_convs, prepared.eval_convs, run, model=model, processor=processor, collator=collator,
                    lengths=lengths, callbacks=callbacks)
    plot_step(run)
    return trainer, warm


def run_main_job(out, seed: int = 0, smoke: bool = False, look: str = Config.twin_look) -> dict:
    """Run the main job into ``out`` (replaced whole when it finishes); returns what ``metrics.json`` holds."""
    from ..offline.tiny_model import DST_STATS, build_tiny_vlm
    from .steps import balanced_train_convs, baseline_step, inspect_step, prepare

    out = check_writable(out)
    stages, t_all = {}, time.perf_counter()

    def lap(name, t):
        stages[name] = round(time.perf_counter() - t, 1)
        return time.perf_counter()

    with staged(out) as work:
        cfg, job = main_job_config(work, seed, smoke, look)
        t = time.perf_counter()
        name = f"tiny-{job.model_size}"
        build_tiny_vlm(work / name, seed=seed, max_pixels=cfg.max_pixels, size=job.model_size,
                       **DST_STATS[cfg.twin_look])
        cfg = replace(cfg, model=str(work / name))
        label = f"{name}, from scratch"
        prepared = prepare(cfg)
        train_convs = balanced_train_convs(prepared) if job.balance_judgement else prepared.train_convs
        _ = prepared.infer       # made here, so each stage time below holds its stage only
        t = lap("twin and conversations", t)
        before = inspect_step(cfg, "base", prepared=prepared, label=label)
        t = lap("inspect before training", t)
        baseline = baseline_step(cfg, prepared)
        t = lap("classic baseline", t)
        trainer, warm = fine_tune(cfg, job, prepared, train_convs)
        train_stats = json.loads((work / "train_stats.json").read_text())
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
            | {"recipe": asdict(job)},
            "train_conversations": len(train_convs), "test_records": len(test),
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
        (work / "report.md").write_text(main_job_md(m))
        (work / "report.html").write_text(main_job_html(m, work))
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
