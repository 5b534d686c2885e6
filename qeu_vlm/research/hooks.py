"""Training options of the learn profile (a from-scratch model on CPU), handed to ``training.train`` as its
``extras`` hook: ``extras(cfg, lab, ...)`` turns the ``LearnSettings`` into trainer callbacks, an optimizer and the
vision warm-up.
"""
from __future__ import annotations

import json
from functools import partial
from pathlib import Path

from ..batching import TrainingError, judgement_first


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


def extras(cfg, lab, model, processor, collator, train_convs: list, run: Path, resumed: bool) -> dict:
    """``{"callbacks": [...], "optimizer": fn(trainer) or None, "warmup": stats or None}`` for the options set.

    The vision warm-up runs here, before the trainer exists, and its seconds come off the time budget: it is part
    of the run's CPU budget. A resumed run skips it (its checkpoint already holds the warmed-up tower).
    """
    budget, warm, callbacks = lab.time_budget_s, None, []
    if lab.vision_warmup_steps and not resumed:
        from ..tools.vision_warmup import warm_up_vision

        warm = warm_up_vision(model, processor, train_convs, lab.vision_warmup_steps, cfg.learning_rate,
                              cfg.batch_size or 8, cfg.seed, until=lab.vision_warmup_until)
        (Path(run) / "vision_warmup.json").write_text(json.dumps(warm, indent=1))
        if budget:
            budget = max(1.0, budget - warm["seconds"])
    if budget:
        callbacks.append(time_budget(budget))
    if lab.judgement_first_steps:
        callbacks.append(judgement_first(collator, lab.judgement_first_steps))
    optimizer = None
    if lab.vision_learning_rate is not None:
        optimizer = partial(optimizer_with_vision_rate, vision_lr=lab.vision_learning_rate)
    return {"callbacks": callbacks, "optimizer": optimizer, "warmup": warm}
