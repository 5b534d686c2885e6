"""The main job: synth -> validate -> convert -> model -> inspect (before) -> train -> plot -> inspect (after)
-> score -> report. Everything lands in one run folder; ``metrics.json`` and ``report.md`` always."""
from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from . import backend as backends
from .answer import answer_for, format_answer
from .config import Config
from .conversation import balance_judgements, convert, shot_plan
from .data import DataError, load_pools, load_records
from .domain import PASSED, parse_bbox
from .generation import predict
from .metrics import fmt_metric, score_rows
from .plots import evaluation_plots, example_figure, learning_curves, sample_sheet
from .synth import SynthConfig, Twin, write_twin
from .model import load_model
from .training import train

SPLITS = ("CYLNimages_train_1015", "CYLNimages_test_1015")
HEADLINE = ("format_valid", "judgement_balanced_accuracy", "mode_accuracy", "position_exact", "within_one_pin",
            "exact_match", "distinct_positions")


def split_sources(cfg: Config, run: Path) -> dict:
    """``{split name: (source, split argument)}`` for ``load_records``.

    The real data are two Hub repos with one ``train`` split each; a Drive folder holds one sub-folder per
    split (the twin's ``drive/`` layout); a saved DatasetDict holds both splits by name.
    """
    if cfg.data == "synthetic":
        return {s: (str(run / "twin" / "dataset"), s) for s in SPLITS}
    if cfg.data.startswith("hub:"):
        test = cfg.test_data or cfg.data.replace("train", "test")
        if test == cfg.data:
            raise DataError(f"{cfg.data}: set Config.test_data to the test set's Hub repo (hub:OWNER/NAME)")
        return {SPLITS[0]: (cfg.data, "train"), SPLITS[1]: (test, "train")}
    out = {}
    for s, given in zip(SPLITS, (cfg.data, cfg.test_data)):
        root = Path(given or cfg.data)
        out[s] = (str(root / s), s) if (root / s / "metadata.csv").exists() else (str(root), s)
    return out


def load_data(cfg: Config, run: Path | None = None):
    """``(splits, pools, validation reports)``. Every problem of a split is listed, written to
    ``validation_<split>.txt`` and raised. The synthetic source writes the twin into the run folder first."""
    run = Path(run or cfg.run_dir)
    if cfg.data == "synthetic":
        synth = SynthConfig(n_train=cfg.n_train, n_test=cfg.n_test, seed=cfg.seed, dst_fraction=cfg.dst_fraction)
        made = run / "twin" / "summary.json"
        # The twin is deterministic from its config: reuse it when an earlier step already wrote this one.
        if not made.exists() or json.loads(made.read_text())["config"] != Twin(synth).summary()["config"]:
            write_twin(synth.generate(), run / "twin")
    pools_dir = cfg.pools or (run / "twin" / "drive" if cfg.data == "synthetic" else None)
    if pools_dir is None:
        raise DataError(f"{cfg.data}: set Config.pools to the Drive folder holding passed_image/")
    data, reports = {}, {}
    for s, (source, split) in split_sources(cfg, run).items():
        data[s], reports[s] = load_records(source, split=split, collect=True)
        if not reports[s].ok:
            (run / f"validation_{s}.txt").write_text(str(reports[s]))
            raise DataError(str(reports[s]))
    return data, load_pools(pools_dir), reports


@dataclass
class Prepared:
    """What every step starts from; ``prepare(cfg)`` makes it once per process."""

    run: Path
    train_convs: list
    eval_convs: list
    test: object                 # the inspected test slice (datasets.Dataset)
    infer: dict                  # shot mode -> inference conversations of the test slice
    train_records: object
    pools: object


def prepare(cfg: Config) -> Prepared:
    """Data -> conversations, deterministic from the config, so each step can rebuild them from the run folder."""
    run = Path(cfg.run_dir)
    run.mkdir(parents=True, exist_ok=True)
    if not (run / "config.json").exists():
        cfg.save(run / "config.json")
    data, pools, _ = load_data(cfg, run)
    train_ds, test_ds = data[SPLITS[0]], data[SPLITS[1]]
    if not (run / "samples.png").exists():
        sample_sheet(train_ds, pools, path=run / "samples.png")
    shots = shot_plan(len(train_ds), one_shot_first=min(cfg.one_shot_first, len(train_ds)))
    how = dict(prompt_set=cfg.prompt_set, size=cfg.image_size, ablation=cfg.ablation)
    convs = convert(train_ds, pools, shots, seed=cfg.seed, progress=True, **how)
    n_eval = min(cfg.n_eval, len(convs) // 4)
    test = test_ds.select(range(min(cfg.n_inspect, len(test_ds))))
    infer = {shot: convert(test, pools, [shot] * len(test), seed=cfg.seed + 1, with_answer=False, **how)
             for shot in cfg.inspect_shots}
    train_convs = convs[:len(convs) - n_eval]
    if cfg.balance_judgement:
        passed = [parse_bbox(b)[0] == PASSED for b in train_ds.select(range(len(train_convs)))["bbox_str"]]
        train_convs = balance_judgements(train_convs, passed, cfg.seed)
    return Prepared(run, train_convs, convs[len(convs) - n_eval:], test, infer, train_ds, pools)


def train_step(cfg: Config, prepared: Prepared | None = None):
    backends.choose(cfg.backend)
    p = prepared or prepare(cfg)
    trainer = train(cfg, p.train_convs, p.eval_convs, p.run)
    plot_step(p.run)
    return trainer


def _training_log(run) -> Path:
    path = Path(run) / "log_history.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no training log in this run folder; train first "
                                "(notebook 03_finetune, or python -m qeu_vlm train --run RUN)")
    return path


def plot_step(run) -> Path:
    """Learning curves from the saved log only: the same PNG from the notebook and the command line."""
    run = Path(run)
    learning_curves(_training_log(run), run / "learning_curves.png")
    return run / "learning_curves.png"


def loss_summary(run) -> dict:
    """First and last train loss, and eval loss at each evaluation, from the saved log only."""
    log = json.loads(_training_log(run).read_text())
    train = [h["loss"] for h in log if "loss" in h]
    return {"steps": max((h.get("step", 0) for h in log), default=0),
            "first_train_loss": train[0] if train else None, "last_train_loss": train[-1] if train else None,
            "eval_loss": {h["step"]: round(h["eval_loss"], 4) for h in log if "eval_loss" in h}}


def inspect_step(cfg: Config, which: str = "finetuned", model=None, processor=None, prepared=None) -> dict:
    """Inspect the test slice zero- and one-shot with the base model or base + trained weights; score it.

    ``prepared``: what ``prepare(cfg)`` returned, so a caller running several steps loads the data once.
    """
    backend = backends.choose(cfg.backend)
    p = prepared or prepare(cfg)
    run, test = p.run, p.test
    if model is None:
        model, processor = load_model(cfg, run, backend, adapter=str(run / "adapter") if which == "finetuned" else None)
    truths = [answer_for(r) for r in test]
    rows = []
    for shot, cs in p.infer.items():
        new = predict(model, processor, test, cs, truths, run / f"predictions_{which}_{shot}.jsonl",
                      batch_size=cfg.inspect_batch_size, max_new_tokens=cfg.max_new_tokens, backend=backend)
        example_figure(cs[0], new[0]["text"], format_answer(truths[0]), run / f"example_{which}_{shot}.png")
        rows += new
    evaluation_plots(rows, run / f"evaluation_{which}.png", title=which)
    scores = score_rows(rows)
    seen = Counter(r["parsed"]["position"] for r in rows).most_common()
    scores["answers_seen"], scores["answer_distribution"] = dict(seen[:5]), dict(seen)
    (run / f"metrics_{which}.json").write_text(json.dumps(scores, indent=1, default=str))
    return scores


def baseline_step(cfg: Config, prepared=None) -> dict:
    """The classic inspector: fitted on the training split, run on the same test slice as the VLM (reference +
    test image, so its rows count as zero-shot), scored the same way."""
    import numpy as np

    from .baseline import Baseline
    from .generation import prediction_row, write_jsonl

    p = prepared or prepare(cfg)
    run, pools = p.run, p.pools
    bl = Baseline().fit(p.train_records, pools)
    bl.save(run / "baseline.json")
    rng = np.random.default_rng(cfg.seed + 2)
    rows = []
    for r in tqdm(p.test, desc="baseline"):
        t = time.perf_counter()
        text = bl.answer(r, pools.passed[r["type"]][rng.integers(len(pools.passed[r["type"]]))])
        rows.append(prediction_row(text, answer_for(r), "zero", r["type"], time.perf_counter() - t))
    write_jsonl(rows, run / "predictions_baseline.jsonl")
    scores = score_rows(rows)
    (run / "metrics_baseline.json").write_text(json.dumps(scores, indent=1, default=str))
    return scores


def run_replay(cfg: Config) -> dict:
    t0 = time.perf_counter()
    backend = backends.choose(cfg.backend)
    prepared = prepare(cfg)
    base = inspect_step(cfg, "base", prepared=prepared)
    baseline = baseline_step(cfg, prepared)
    trainer = train_step(cfg, prepared)
    tuned = inspect_step(cfg, "finetuned", trainer.model, trainer.processing_class, prepared)
    metrics = {"base": base, "finetuned": tuned, "baseline": baseline, "backend": backend, "model": cfg.model,
               "train_records": len(prepared.train_convs), "eval_records": len(prepared.eval_convs),
               "test_records": len(prepared.test),
               "answers_seen": tuned["answers_seen"], "seconds": round(time.perf_counter() - t0, 1)}
    (prepared.run / "metrics.json").write_text(json.dumps(metrics, indent=1, default=str))
    (prepared.run / "report.md").write_text(report(metrics, cfg))
    return metrics


LEARN_TARGETS = {"format_valid": (">=", 0.95), "judgement_balanced_accuracy": (">=", 0.95)}
ABLATION_TARGET = ("judgement_balanced_accuracy", "<=", 0.60)


def run_learn(cfg: Config, ablation: bool = True, baseline: bool = True) -> dict:
    """The learn profile (``Config().learn()``): train from scratch on CPU, inspect the held-out DST records, and
    (``ablation``) the same with every test image replaced by its reference, side by side in ``learn_report.md``."""
    from dataclasses import replace

    t0 = time.perf_counter()
    out, runs = {}, {"learn": cfg}
    if ablation:
        twin = Path(cfg.run_dir) / "twin"
        runs["ablation"] = replace(cfg, run_dir=str(Path(cfg.run_dir) / "ablation"), ablation="reference-as-test",
                                   data=str(twin / "dataset"), pools=str(twin / "drive"))
    for name, c in runs.items():
        prepared = prepare(c)
        trainer = train_step(c, prepared)
        scores = inspect_step(c, "finetuned", trainer.model, trainer.processing_class, prepared)
        out[name] = {"scores": scores["all"], "answer_distribution": scores["answer_distribution"],
                     "train": json.loads((prepared.run / "train_stats.json").read_text()),
                     "loss": loss_summary(prepared.run), "test_records": len(prepared.test)}
        if name == "learn" and baseline:
            out["baseline"] = baseline_step(c, prepared)["all"]
    out["seconds"] = round(time.perf_counter() - t0, 1)
    run = Path(cfg.run_dir)
    (run / "learn_metrics.json").write_text(json.dumps(out, indent=1, default=str))
    (run / "learn_report.md").write_text(learn_report(out))
    return out


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
    lines = ["# qeu_vlm learn profile: a from-scratch tiny VLM on CPU", "",
             f"{m['learn']['test_records']} held-out DST records inspected zero-shot; {m['seconds']} s in all.", "",
             "| run | vision warm-up s | steps | train s | last train loss | " + " | ".join(cols) + " |",
             "|---|---|---|---|---|" + "---|" * len(cols)]
    for name in ("learn", "ablation"):
        if name in m:
            r = m[name]
            lines.append(f"| {name} | {r['train'].get('vision_warmup_s', '-')} | {r['train']['steps']} | "
                         f"{r['train']['runtime_s']} | "
                         f"{fmt_metric(r['loss']['last_train_loss'])} | "
                         + " | ".join(fmt_metric(r["scores"][k]) for k in cols) + " |")
    if "baseline" in m:
        lines.append("| classic baseline | - | - | - | - | "
                     + " | ".join(fmt_metric(m["baseline"][k]) for k in cols) + " |")
    lines += ["", "Targets:"]
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
    lines += ["", "Answer distribution (predicted position: count), so a collapsed model cannot hide behind its loss:", ""]
    for name in ("learn", "ablation"):
        if name in m:
            lines.append(f"- {name}: {json.dumps(m[name]['answer_distribution'])}")
    return "\n".join(lines) + "\n"


def comparison_table(run) -> str:
    """Markdown table of every ``metrics_*.json`` in the run folder (base, finetuned, ...), by shot mode."""
    lines = ["| model | shot | " + " | ".join(HEADLINE) + " |", "|---|---|" + "---|" * len(HEADLINE)]
    for path in sorted(Path(run).glob("metrics_*.json"), key=lambda p: (p.stem != "metrics_base", p.stem)):
        for shot, s in json.loads(path.read_text())["by_shot"].items():
            lines.append(f"| {path.stem[8:]} | {shot} | " + " | ".join(fmt_metric(s[k]) for k in HEADLINE) + " |")
    return "\n".join(lines)


def report(m: dict, cfg: Config) -> str:
    lines = [f"# qeu_vlm replay: {m['model']} ({m['backend']} backend)", "",
             f"{m['train_records']} training conversations, {m['eval_records']} eval, {m['test_records']} test records "
             f"inspected zero-shot and one-shot; {m['seconds']} s in all.", "", comparison_table(cfg.run_dir),
             "", "`baseline` is the classic non-VLM inspector (`qeu_vlm.baseline`: DST blob / RAW aligned difference, "
             "fitted on the training split): the bar a fine-tuned VLM must clear. By image type: "
             + "; ".join(f"{t}: judgement {fmt_metric(s['judgement_accuracy'])}, position {fmt_metric(s['position_exact'])}"
                         for t, s in m["baseline"]["by_type"].items()) + ".",
             "", "Most frequent predicted positions (finetuned): " + json.dumps(m["answers_seen"]), "",
             "![samples](samples.png)", "", "![learning curves](learning_curves.png)", "",
             "![before](evaluation_base.png)", "", "![after](evaluation_finetuned.png)", "",
             "![one-shot example](example_finetuned_one.png)", ""]
    if cfg.model == "tiny":
        lines.insert(2, "**CPU smoke figures from a tiny randomly initialised model: they show the pipeline runs, "
                        "not how well a real VLM inspects.**\n")
    return "\n".join(lines)
