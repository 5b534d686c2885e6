"""The main job: the package's pretrained VLM, fine-tuned on this machine's CPU, learns to inspect.

``python -m qeu_vlm main-job --out runs/main_job`` (the README's first command, ``scripts/main_job.sh``) writes a twin
of rendered DST images, loads the offline pretrained model (``offline/pretrain.py``: a ~4M-parameter Qwen2.5-VL that
knows where a red star is), inspects held-out test records with it (before), trains it, inspects the same records
again (after), runs the classic baseline on them (the bar to clear), and writes ``report.html``, ``report.md`` and
``metrics.json``. The run folder is written whole or not at all (``files.staged``). The recipe is
``recipes/main_job.py``.

Training has a fixed length, so the outcome does not depend on the machine's speed: a vision warm-up of 150 steps
(``vision_warmup``: each image token learns which pin's defect it holds), then 280 fine-tuning steps.

>>> cfg, job = main_job_config("runs/main_job"); cfg.max_steps, job.warmup_steps, cfg.twin_look
(280, 150, 'rendered')
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
from ..offline.pretrain import PRETRAINED
from ..recipes.main_job import CONFIG, IN_SMOKE_MODE, MainJob
from .report import main_job_html, main_job_md

# What the main job must show, on held-out records after training, wherever it runs (benchmarks/main_job.py checks
# it on seeds 0-4 with 1 and 2 threads): a model that reads the image, judges it and names the pin.
TARGETS = {"format_valid": 0.95, "judgement_balanced_accuracy": 0.95, "position_exact": 0.50,
           "distinct_positions": 10}
MODEL_LABEL = "offline pretrained (~4M), fine-tuned"


class MainJobError(ValueError):
    pass


def check_args(seed=0, threads=None) -> None:
    """A seed or thread count that makes no sense is an error before any work."""
    import os

    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise MainJobError(f"seed must be a whole number >= 0, got {seed!r}")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise MainJobError(f"threads must be a whole number >= 1, got {threads!r}")
    if threads is not None and threads > (os.cpu_count() or 1):
        raise MainJobError(f"threads={threads}, but this machine has {os.cpu_count()} cores")


def main_job_config(run_dir, seed: int = 0, smoke: bool = False) -> tuple[Config, MainJob]:
    """The main job's ``(Config, MainJob)`` from its recipe; ``smoke``: the same steps, small (``Config.smoke``),
    still from the pretrained model."""
    check_args(seed)
    cfg = Config(run_dir=str(run_dir), seed=seed, model=str(PRETRAINED), **CONFIG)
    if smoke:
        small = cfg.smoke()
        return replace(small, model=cfg.model, real_model=None, max_pixels=cfg.max_pixels), \
            replace(MainJob(), **IN_SMOKE_MODE)
    return cfg, MainJob()


def fine_tune(cfg: Config, job: MainJob, prepared, train_convs: list):
    """The main job's training: the core's calls in order, with the vision warm-up before the trainer starts.
    Returns ``(trainer, warm-up stats)``."""
    from .. import backend as backends
    from ..batching import make_collator
    from ..conversation import images_of
    from ..training import last_checkpoint, train
    from .steps import load_step, plot_step, preflight_step
    from .vision_warmup import freeze, marks_from_records, warm_up_tokens

    backend = backends.choose(cfg.backend)
    run = prepared.run
    model, processor = load_step(cfg, run, backend)
    collator = make_collator(cfg, model, processor, backend)
    lengths = preflight_step(cfg, prepared, collator, backend, train_convs)
    warm = None
    freeze(model, job.vision_frozen)
    if last_checkpoint(run) is None:              # a resumed run's checkpoint already holds the warmed-up tower
        records = prepared.train_records.select(range(len(prepared.train_convs)))     # not the eval records
        tests = [images_of(c)[-1] for c in prepared.train_convs]      # each record's test image, resized
        warm = warm_up_tokens(model, processor, marks_from_records(records, cfg.image_size, tests),
                              job.warmup_steps, cfg.learning_rate, job.warmup_batch_size, cfg.seed)
        (run / "vision_warmup.json").write_text(json.dumps(warm, indent=1))
    freeze(model, job.vision_frozen_in_fine_tuning)
    trainer = train(cfg, train_convs, prepared.eval_convs, run, model=model, processor=processor, collator=collator,
                    lengths=lengths)
    plot_step(run)
    return trainer, warm


def run_main_job(out, seed: int = 0, smoke: bool = False, threads: int | None = None) -> dict:
    """Run the main job into ``out`` (replaced whole when it finishes); returns what ``metrics.json`` holds.
    ``threads``: torch's thread count (default: torch's choice)."""
    import torch

    from .steps import balanced_train_convs, baseline_step, inspect_step, prepare

    check_args(seed, threads)
    out = check_writable(out)
    if threads:
        torch.set_num_threads(threads)
    stages, t_all = {}, time.perf_counter()

    def lap(name, t):
        stages[name] = round(time.perf_counter() - t, 1)
        return time.perf_counter()

    with staged(out) as work:
        cfg, job = main_job_config(work, seed, smoke)
        t = time.perf_counter()
        prepared = prepare(cfg)
        train_convs = balanced_train_convs(prepared) if job.balance_judgement else prepared.train_convs
        _ = prepared.infer       # made here, so each stage time below holds its stage only
        t = lap("twin and conversations", t)
        before = inspect_step(cfg, "base", prepared=prepared, label=MODEL_LABEL.split(",")[0])
        t = lap("inspect before training", t)
        baseline = baseline_step(cfg, prepared, fit_on=job.baseline_fit_on)
        t = lap("classic baseline", t)
        trainer, warm = fine_tune(cfg, job, prepared, train_convs)
        train_stats = json.loads((work / "train_stats.json").read_text())
        stages["vision warm-up"] = warm["seconds"]
        stages["fine-tuning"] = train_stats["runtime_s"]
        stages["model loading and saving"] = round(time.perf_counter() - t - warm["seconds"]
                                                   - train_stats["runtime_s"], 1)
        t = time.perf_counter()
        after = inspect_step(cfg, "finetuned", trainer.model, trainer.processing_class, prepared, label=MODEL_LABEL)
        t = lap("inspect after training", t)
        test = prepared.test
        m = {
            "date": datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds"),
            "commit": _commit(), "device": _device(), "seed": seed, "threads": torch.get_num_threads(),
            "smoke": smoke,
            "model": MODEL_LABEL, "parameters": sum(p.numel() for p in trainer.model.parameters()),
            "settings": {k: getattr(cfg, k) for k in ("twin_look", "n_train", "n_test", "n_inspect", "image_size",
                                                      "prompt_set", "batch_size", "learning_rate", "lr_schedule",
                                                      "max_steps")}
            | {"recipe": asdict(job)},
            "train_conversations": len(train_convs), "test_records": len(test),
            "test_passed": sum(r["dir"] == "OK" for r in test),
            "vision_warmup": {k: warm[k] for k in ("steps", "accuracy", "log")},
            "fine_tuning_steps": train_stats["steps"],
            "before": before["all"], "after": after["all"], "baseline": baseline["all"],
            "answer_distribution_after": after["answer_distribution"],
            "targets": targets(after["all"]),
            "stages_s": stages,
        }
        m["examples"] = _examples(work, test)
        m["seconds"] = round(time.perf_counter() - t_all, 1)
        (work / "metrics.json").write_text(json.dumps(m, indent=1, default=str))
        (work / "report.md").write_text(main_job_md(m))
        (work / "report.html").write_text(main_job_html(m, work))
        # the saved settings name the final folder, so later steps (python -m qeu_vlm inspect --run) find it
        replace(cfg, run_dir=str(out)).save(work / "config.json")
    return m


def targets(scores: dict) -> dict:
    """Each target: its bar, the value reached and whether it is met (a score that is None is not met).

    >>> targets({"format_valid": 1.0, "judgement_balanced_accuracy": 0.94, "position_exact": None,
    ...          "distinct_positions": 26})["judgement_balanced_accuracy"]
    {'at_least': 0.95, 'value': 0.94, 'met': False}
    """
    return {k: {"at_least": v, "value": scores.get(k), "met": scores.get(k) is not None and scores[k] >= v}
            for k, v in TARGETS.items()}


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
