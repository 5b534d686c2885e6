"""What the learn profile adds to a plain fine-tune, in its own code: the ablation of its conversations, a clock cap
and a learning rate of the vision tower's own (the trainer's callback and optimizer), and ``fine_tune``, which
composes them with the core's calls and the main job's vision warm-up (``qeu_vlm.tools.vision_warmup``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, fields
from functools import partial
from pathlib import Path

from ..batching import TrainingError
from ..tools.steps import Prepared

ABLATIONS = ("reference-as-test", "no-reference")


def ablate(conv: dict, ablation: str) -> dict:
    """A conversation whose inspection turn holds no defect information: ``"reference-as-test"`` replaces the test
    image by its reference (the answer stays the record's); ``"no-reference"`` leaves the test image alone (a
    diagnostic of how much the reference costs a small model)."""
    if ablation not in ABLATIONS:
        raise ValueError(f"unknown ablation {ablation!r} (known: {', '.join(ABLATIONS)})")
    msgs = [dict(m, content=list(m["content"])) for m in conv["messages"]]
    content = [m for m in msgs if m["role"] == "user"][-1]["content"]
    images = [j for j, c in enumerate(content) if c["type"] == "image"]
    if len(images) != 2:
        raise ValueError(f"an ablation needs a reference and a test image in the inspection turn, not {len(images)} "
                         "(a composite conversation has one)")
    ref, test = images
    if ablation == "reference-as-test":
        content[test] = {"type": "image", "image": content[ref]["image"].copy()}
    else:
        del content[ref]
    return dict(conv, messages=msgs)


@dataclass
class Ablated(Prepared):
    """A run's conversations, training, eval and inspection alike, with one ablation applied (``ablate``)."""

    ablation: str = "reference-as-test"

    @classmethod
    def of(cls, p: Prepared, ablation: str) -> "Ablated":
        return cls(**{f.name: getattr(p, f.name) for f in fields(Prepared)}, ablation=ablation)

    def convert(self, records, shots: list, seed: int, **kw) -> list:
        return [ablate(c, self.ablation) for c in super().convert(records, shots, seed, **kw)]


def time_budget(seconds: float):
    """A callback that ends training once ``seconds`` of training have passed (checked after each step)."""
    import time

    from transformers import TrainerCallback

    class TimeBudget(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            self.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            if time.perf_counter() - self.start > seconds:
                control.should_training_stop = True

    return TimeBudget()


def optimizer_with_vision_rate(trainer, vision_lr: float):
    """The optimizer the Trainer would build (its class, its weight decay split), with the vision tower and its
    merger at their own peak rate. The scheduler scales each group's rate, so both follow the same schedule."""
    model, args = trainer.model, trainer.args
    cls, kwargs = trainer.get_optimizer_cls_and_kwargs(args, model)
    decay = set(trainer.get_decay_parameter_names(model))
    groups = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            groups.setdefault((".visual." in f".{name}", name in decay), []).append(p)
    if not any(vision for vision, _ in groups):
        raise TrainingError("vision_learning_rate is set, but the model has no trainable 'visual' parameters")
    return cls([{"params": ps, "weight_decay": args.weight_decay if d else 0.0, **({"lr": vision_lr} if v else {})}
                for (v, d), ps in groups.items()], **kwargs)


def fine_tune(cfg, lab, prepared: Prepared, train_convs: list | None = None, resume: bool = True, callbacks=()):
    """Train with the profile's options (``LearnSettings``): the vision warm-up before the trainer starts, its
    seconds taken off the clock cap (it is part of the run's CPU budget; a resumed run skips it, its checkpoint
    already holds the warmed-up tower), the tower's own rate. Returns the trainer."""
    from .. import backend as backends
    from ..batching import make_collator
    from ..training import last_checkpoint, train
    from ..tools.steps import load_step, plot_step, preflight_step
    from ..tools.vision_warmup import marks_from_records, warm_up_tokens

    backend = backends.choose(cfg.backend)
    run, train_convs = prepared.run, prepared.train_convs if train_convs is None else train_convs
    model, processor = load_step(cfg, run, backend)
    collator, callbacks = make_collator(cfg, model, processor, backend), list(callbacks)
    lengths = preflight_step(cfg, prepared, collator, backend, train_convs)
    budget = lab.time_budget_s
    if lab.vision_warmup_steps and not (resume and last_checkpoint(run)):
        records = prepared.train_records.select(range(len(prepared.train_convs)))     # not the eval records
        warm = warm_up_tokens(model, processor, marks_from_records(records, cfg.image_size), lab.vision_warmup_steps,
                              cfg.learning_rate, 16, cfg.seed)
        (Path(run) / "vision_warmup.json").write_text(json.dumps(warm, indent=1))
        if budget:
            budget = max(1.0, budget - warm["seconds"])
    if budget:
        callbacks.append(time_budget(budget))
    optimizer = None
    if lab.vision_learning_rate is not None:
        optimizer = partial(optimizer_with_vision_rate, vision_lr=lab.vision_learning_rate)
    trainer = train(cfg, train_convs, prepared.eval_convs, run, resume=resume, callbacks=callbacks, model=model,
                    processor=processor, collator=collator, lengths=lengths, optimizer=optimizer)
    plot_step(run)
    return trainer
