"""The steps of a run, each reading and writing one run folder: data -> conversations (``prepare``), train, plot,
inspect, the classic baseline; and the replay, which runs them all and writes the report. Each composes the core's
calls (``load_model``, ``make_collator``, ``preflight``, ``train``, ``predict``) for one run folder.

A notebook or a command runs one step; each finds what earlier steps wrote in the run folder (``config.json``,
the twin, ``adapter/``, ``log_history.json``), so any step runs alone in a fresh process.
"""
from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import asdict, dataclass, replace
from functools import cached_property
from pathlib import Path

from huggingface_hub.utils import tqdm   # huggingface_hub's switch turns it off

from .. import backend as backends
from ..answer import answer_for, format_answer
from ..batching import make_collator, preflight
from ..config import Config
from ..conversation import convert, shot_plan, with_image_list
from ..data import DataError, load_pools, load_records
from ..domain import PASSED, parse_bbox
from ..generation import predict, prediction_row, write_jsonl
from ..metrics import score_rows
from ..model import load_model, process_state
from ..plots import evaluation_plots, example_figure, learning_curves, sample_sheet
from ..training import check_processes, train
from ..twin.synth import SynthConfig, Twin, write_twin
from .planner import memory_check
from .report import report

SPLITS = ("CYLNimages_train_1015", "CYLNimages_test_1015")


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
        synth = SynthConfig(n_train=cfg.n_train, n_test=cfg.n_test, seed=cfg.seed, dst_fraction=cfg.dst_fraction,
                            look=cfg.twin_look)
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
    """What the steps start from. The conversations are made when first asked for, so a step that only inspects
    never converts the training set; ``prepare`` makes one per run and process."""

    cfg: Config
    run: Path
    train_records: object        # datasets.Dataset
    test_records: object
    pools: object

    def convert(self, records, shots: list, seed: int, **kw) -> list:
        """Records -> conversations, as every step of the run makes them (``conversation.convert``)."""
        return convert(records, self.pools, shots, seed=seed, prompt_set=self.cfg.prompt_set,
                       size=self.cfg.image_size, **kw)

    @cached_property
    def _convs(self) -> list:
        shots = shot_plan(len(self.train_records), one_shot_first=min(self.cfg.one_shot_first, len(self.train_records)))
        return self.convert(self.train_records, shots, self.cfg.seed, progress=True)

    @property
    def n_eval(self) -> int:
        return min(self.cfg.n_eval, len(self.train_records) // 4)

    @cached_property
    def train_convs(self) -> list:
        return self._convs[:len(self._convs) - self.n_eval]

    @cached_property
    def eval_convs(self) -> list:
        return self._convs[len(self._convs) - self.n_eval:]

    @cached_property
    def test(self):
        """The inspected test slice, ``stratified``: a small slice holds both judgements (judgement balanced accuracy
        is defined whenever the split has a passed part) and both image types."""
        return self.test_records.select(stratified(self.test_records, self.cfg.n_inspect))

    @cached_property
    def infer(self) -> dict:
        """Shot mode -> inference conversations of the test slice."""
        return {shot: self.convert(self.test, [shot] * len(self.test), self.cfg.seed + 1, with_answer=False)
                for shot in self.cfg.inspect_shots}


def stratified(records, n: int) -> list[int]:
    """The first ``n`` records taken in turn from each (image type, passed or defective) group, in the split's
    order; their indices, sorted."""
    from itertools import chain, zip_longest

    groups: dict = {}
    for i, (typ, code) in enumerate(zip(records["type"], records["dir"])):
        groups.setdefault((typ, code == "OK"), []).append(i)
    turns = [i for i in chain.from_iterable(zip_longest(*groups.values())) if i is not None]
    return sorted(turns[:n])


_PREPARED: dict = {}


def prepare(cfg: Config) -> Prepared:
    """Load and validate the run's data (the twin is written first when it is the source); the same config in the
    same process gets the same ``Prepared`` back, so steps run one after another load the data once."""
    key = json.dumps(asdict(cfg), sort_keys=True, default=str)
    if key in _PREPARED:
        return _PREPARED[key]
    run = Path(cfg.run_dir)
    run.mkdir(parents=True, exist_ok=True)
    if not (run / "config.json").exists():
        cfg.save(run / "config.json")
    data, pools, _ = load_data(cfg, run)
    train_ds = data[SPLITS[0]]
    if not (run / "samples.png").exists():
        sample_sheet(train_ds, pools, path=run / "samples.png")
    _PREPARED[key] = Prepared(cfg, run, train_ds, data[SPLITS[1]], pools)
    return _PREPARED[key]


def balance_judgements(convs: list[dict], passed: list[bool], seed: int = 0) -> list[dict]:
    """Repeat the rarer judgement's conversations until passed and defective are equally common, shuffled.

    A model trained on the twin's 1:3 passed:defective mix learns to answer "defective" long before it reads the
    image, and balanced accuracy scores that as chance; equal classes make every step's judgement gradient count.

    >>> sorted(c["i"] for c in balance_judgements([{"i": 0}, {"i": 1}, {"i": 2}], [True, False, False]))
    [0, 0, 1, 2]
    """
    import numpy as np

    if len(passed) != len(convs):
        raise ValueError(f"{len(passed)} judgements for {len(convs)} conversations")
    rare = [c for c, p in zip(convs, passed) if p] if 2 * sum(passed) < len(passed) else \
        [c for c, p in zip(convs, passed) if not p]
    if not rare:
        return list(convs)
    out = list(convs) + [rare[i % len(rare)] for i in range(len(convs) - 2 * len(rare))]
    order = np.random.default_rng(seed).permutation(len(out))
    return [out[i] for i in order]


def balanced_train_convs(p: Prepared) -> list:
    """The run's training conversations with both judgements equally common (``balance_judgements``); the eval
    conversations keep the natural mix."""
    passed = [parse_bbox(b)[0] == PASSED for b in p.train_records.select(range(len(p.train_convs)))["bbox_str"]]
    return balance_judgements(p.train_convs, passed, p.cfg.seed)


def loadable(cfg: Config, run) -> Config:
    """``cfg`` with a model the core loads: ``"tiny"`` becomes the offline tiny model's folder, built into the run
    folder the first time."""
    if cfg.model != "tiny":
        return cfg
    from ..offline.tiny_model import build_tiny_vlm

    path = Path(run) / "tiny_model"
    if not (path / "config.json").exists():
        build_tiny_vlm(path, seed=cfg.seed, max_pixels=cfg.max_pixels or 224 * 160)
    return replace(cfg, model=str(path))


def load_step(cfg: Config, run, backend: str, adapter=None):
    """The run's ``(model, processor)``, seeded as training seeds them (``load_model``)."""
    from transformers import set_seed

    set_seed(cfg.seed)
    return load_model(loadable(cfg, run), backend, adapter=adapter)


def preflight_step(cfg: Config, p: Prepared, collator, backend: str, train_convs: list | None = None) -> list[int]:
    """The length pre-flight of every training and eval conversation (``batching.preflight``), then the memory
    check (``planner.memory_check``) written to ``plan.txt``; the training samples' token counts."""
    convs = p.train_convs if train_convs is None else train_convs
    first = {}                          # a balanced set repeats the same conversations: each is checked once
    for i, c in enumerate(convs):
        first.setdefault(id(c), i)
    once = [convs[i] for i in first.values()]
    checked = preflight(collator, [with_image_list(c) for c in once], list(first.values()), cfg.max_length)
    length_of = {id(c): n for c, n in zip(once, checked)}
    lengths = [length_of[id(c)] for c in convs]
    preflight(collator, [with_image_list(c) for c in p.eval_convs], range(len(p.eval_convs)), cfg.max_length, "eval")
    if process_state().is_main_process:
        (p.run / "plan.txt").write_text(memory_check(cfg, lengths, backend))
    return lengths


def train_step(cfg: Config, prepared: Prepared | None = None):
    """Fine-tune (``training.train``) after the pre-flight and memory check, and plot the learning curves.

    In one process, or in each of those ``accelerate launch`` started (``docs/guide.md``, multi-GPU training): the
    first writes the twin and the tiny model while the others wait, then each loads the model onto its own device;
    the adapter, logs, checkpoints and curves are written once."""
    check_processes()                            # before any work
    backend = backends.choose(cfg.backend)
    state = process_state()
    with state.main_process_first():
        p = prepared or prepare(cfg)
        loadable(cfg, p.run)
    model, processor = load_step(cfg, p.run, backend)
    collator = make_collator(cfg, model, processor, backend)
    lengths = preflight_step(cfg, p, collator, backend)
    trainer = train(cfg, p.train_convs, p.eval_convs, p.run, model=model, processor=processor, collator=collator,
                    lengths=lengths)
    if state.is_main_process:
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


def inspect_step(cfg: Config, which: str = "finetuned", model=None, processor=None, prepared=None,
                 label: str | None = None, engine: str = "transformers") -> dict:
    """Inspect the test slice zero- and one-shot with the base model or base + trained weights; score it.

    ``prepared``: what ``prepare(cfg)`` returned, so a caller running several steps loads the data once;
    ``label``: the model as figure titles name it (default ``cfg.model``); ``engine``: ``"transformers"``
    (``generate``, runs everywhere) or ``"vllm"`` (``vllm_engine``: the adapter served as LoRA, the same rows).
    """
    if engine == "vllm":
        from ..vllm_engine import engine_for, predict as vllm_predict, require_vllm

        require_vllm()
    elif engine != "transformers":
        raise ValueError(f"unknown engine {engine!r} (known: transformers, vllm)")
    backend = backends.choose(cfg.backend)
    p = prepared or prepare(cfg)
    run, test = p.run, p.test
    adapter = str(run / "adapter") if which == "finetuned" else None
    if engine == "vllm":
        served_by, adapter = engine_for(loadable(cfg, run), [c for cs in p.infer.values() for c in cs], adapter)
    elif model is None:
        model, processor = load_step(cfg, run, backend, adapter=adapter)
    truths = [answer_for(r) for r in test]
    k = next((i for i, t in enumerate(truths) if t.judgement != PASSED), 0)   # the example shows a bent pin
    rows = []
    for shot, cs in p.infer.items():
        path = run / f"predictions_{which}_{shot}.jsonl"
        if engine == "vllm":
            new = vllm_predict(served_by.base, test, cs, truths, path, adapter, cfg.max_new_tokens, engine=served_by)
        else:
            new = predict(model, processor, test, cs, truths, path, batch_size=cfg.inspect_batch_size,
                          max_new_tokens=cfg.max_new_tokens, backend=backend)
        example_figure(cs[k], new[k]["text"], format_answer(truths[k]), run / f"example_{which}_{shot}.png",
                       bbox=test[k]["bbox_str"], title=f"{which} model ({label or cfg.model}), {shot}-shot: test "
                       f"record {k + 1} of {len(test)}")
        rows += new
    evaluation_plots(rows, run / f"evaluation_{which}.png",
                     title=f"{which} model ({label or cfg.model}), {len(test)} test records")
    return save_inspection(run, which, rows)


def save_inspection(run, which: str, rows: list[dict]) -> dict:
    """Score answers (rows as ``generation.prediction_row`` makes them) and save them in the run folder:
    ``predictions_{which}_{shot}.jsonl`` per shot mode (the baseline's in ``predictions_baseline.jsonl``) and
    ``metrics_{which}.json``, the scores with the positions answered most often. Returns the scores."""
    run = Path(run)
    if which == "baseline":
        write_jsonl(rows, run / "predictions_baseline.jsonl")
    else:
        for shot in dict.fromkeys(r["shot"] for r in rows):
            write_jsonl([r for r in rows if r["shot"] == shot], run / f"predictions_{which}_{shot}.jsonl")
    scores = score_rows(rows)
    seen = Counter(r["parsed"]["position"] for r in rows).most_common()
    scores["answers_seen"], scores["answer_distribution"] = dict(seen[:5]), dict(seen)
    (run / f"metrics_{which}.json").write_text(json.dumps(scores, indent=1, default=str))
    return scores


def baseline_step(cfg: Config, prepared=None, fit_on: int | None = None) -> dict:
    """The classic inspector: fitted on the training split (``fit_on``: on that many of its records, taken in turn
    from each image type and judgement, so the fit costs seconds), run on the same test slice as the VLM (the test
    image alone, so its rows count as zero-shot), scored the same way."""
    import numpy as np

    from .baseline import Baseline

    p = prepared or prepare(cfg)
    run, pools = p.run, p.pools
    train = p.train_records if fit_on is None else p.train_records.select(stratified(p.train_records, fit_on))
    bl = Baseline().fit(train, pools)
    bl.save(run / "baseline.json")
    rng = np.random.default_rng(cfg.seed + 2)
    rows = []
    for r in tqdm(p.test, desc="baseline"):
        t = time.perf_counter()
        text = bl.answer(r, pools.passed[r["type"]][rng.integers(len(pools.passed[r["type"]]))])
        rows.append(prediction_row(text, answer_for(r), "zero", r["type"], time.perf_counter() - t))
    return save_inspection(run, "baseline", rows)


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
