"""The curriculum of a from-scratch VLM: its vision tower first learns to see the defect (``warm_up_vision``), and
its first fine-tuning steps learn the judgement before the address (``judgement_first``).

A language model reads image tokens only through softmax attention, which starts as an average of them, and through
an average a from-scratch tower hardly learns to see a small blob (benchmarks/RESULTS.md, "learn profile"; the pooling
probe). So the tower first learns each training conversation's judgement (passed or defective) from its test image
alone, through a linear head on the max over its tokens, the way a threshold finds a blob. The head is then
dropped, and fine-tuning starts from a tower whose features already mark the defect. Used by the main job
(``main_job``) and the learn research, both from-scratch models (a Qwen-VL tower, called as
``visual(pixel_values, grid_thw=...)``); a pretrained tower needs no such stage.

The stage ends on a criterion, not a clock: once the head's training accuracy over its last ``window`` steps reaches
``until`` (or after ``max_steps``), so the outcome does not depend on the machine's speed.
"""
from __future__ import annotations

import time

import numpy as np


class WarmupError(ValueError):
    pass


def vision_tower(model):
    """The model's vision tower (``...visual``), under any PEFT or wrapper prefix."""
    for name, module in model.named_modules():
        if name.split(".")[-1] == "visual":
            return module
    raise WarmupError(f"{type(model).__name__} has no 'visual' module to warm up")


def image_tokens(tower, processor, images: list) -> list:
    """Each image's tokens as the tower outputs them (after its merger): one (tokens, features) tensor per image,
    on the tower's device and in its dtype."""
    param = next(tower.parameters())
    merge = getattr(processor.image_processor, "merge_size", 2)     # patches merged into one token, per side
    x = processor.image_processor(images=[im.convert("RGB") for im in images], return_tensors="pt")
    feats = tower(x["pixel_values"].to(param.device, param.dtype), grid_thw=x["image_grid_thw"].to(param.device))
    feats = getattr(feats, "pooler_output", feats)
    return list(feats.split((x["image_grid_thw"].prod(-1) // merge ** 2).tolist()))   # images may differ in size


def judgement_examples(convs: list[dict]) -> list[tuple]:
    """(test image, defective?) of each conversation: the last image of its last user turn, and its answer's
    judgement. A conversation without an answer, or whose answer does not read, is an error naming it."""
    from ..answer import parse_answer
    from ..domain import PASSED

    out = []
    for i, conv in enumerate(convs):
        msgs = conv["messages"]
        users = [m for m in msgs if m["role"] == "user"]
        images = [c["image"] for c in (users[-1]["content"] if users else []) if c["type"] == "image"]
        if msgs[-1]["role"] != "assistant" or not images:
            raise WarmupError(f"conversation {i}: needs a test image in its last user turn and an answer after it")
        text = next(c["text"] for c in msgs[-1]["content"] if c["type"] == "text")
        judgement = parse_answer(text).judgement
        if judgement not in (PASSED, "defective"):
            raise WarmupError(f"conversation {i}: its answer has no {PASSED}/defective judgement: {text!r}")
        out.append((images[-1], judgement == "defective"))
    return out


def warm_up_vision(model, processor, convs: list[dict], max_steps: int, lr: float, batch_size: int = 8,
                   seed: int = 0, until: float | None = None, window: int = 50) -> dict:
    """Train the tower of ``model`` (in place) on batches of ``convs``' test images and judgements, until the
    head's training accuracy over the last ``window`` steps is at least ``until`` (checked every step once
    ``window`` steps have run), or for ``max_steps`` (``until=None``: always ``max_steps``).

    Returns ``{"seconds", "steps", "stopped": "criterion" | "max_steps", "accuracy", "log"}``; ``accuracy`` is
    the last window's, and the log holds the head's loss and accuracy over the last ``window`` steps, every 50
    steps and at the last one.
    """
    import torch
    from huggingface_hub.utils import tqdm   # huggingface_hub's switch turns it off

    if max_steps < 1 or window < 1 or (until is not None and not 0 < until <= 1):
        raise WarmupError(f"max_steps and window must be >= 1 and until in (0, 1]: got {max_steps}, {window}, "
                          f"{until}")
    examples = judgement_examples(convs)
    tower = vision_tower(model)
    trainable = [p for p in tower.parameters() if p.requires_grad]
    if not trainable:
        raise WarmupError("the vision tower has no trainable weights (frozen, or finetune_vision=False)")
    param = trainable[0]
    rng = np.random.default_rng(seed)
    head = None
    log, t0, history, stopped = [], time.perf_counter(), [], "max_steps"
    tower.train()
    bar = tqdm(range(1, max_steps + 1), desc="vision warm-up", leave=False)
    for step in bar:
        chosen = [examples[i] for i in rng.integers(0, len(examples), batch_size)]
        feats = torch.stack([f.max(0).values for f in image_tokens(tower, processor, [im for im, _ in chosen])])
        if head is None:
            head = torch.nn.Linear(feats.shape[-1], 1).to(param.device, param.dtype)
            opt = torch.optim.AdamW([*trainable, *head.parameters()], lr=lr, weight_decay=0.0)
        y = torch.tensor([d for _, d in chosen], dtype=feats.dtype, device=feats.device)
        logits = head(feats).squeeze(-1)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append((loss.item(), ((logits > 0) == (y > 0)).float().mean().item()))
        accuracy = float(np.mean([h[1] for h in history[-window:]]))
        done = until is not None and step >= window and accuracy >= until
        if done or step % 50 == 0 or step == max_steps:
            log.append({"step": step, "loss": round(float(np.mean([h[0] for h in history[-window:]])), 4),
                        "accuracy": round(accuracy, 3)})
        if done:
            stopped = "criterion"
            break
    bar.close()
    tower.zero_grad(set_to_none=True)
    return {"seconds": round(time.perf_counter() - t0, 1), "steps": step, "stopped": stopped,
            "accuracy": round(accuracy, 3), "log": log}


def judgement_first(mask, steps: int, cut: str = "defect mode"):
    """A curriculum, judgement before address, as the trainer's collator and one of its callbacks at once: for the
    first ``steps`` steps the final answer carries loss only up to ``cut`` (its defect mode line), so the hard mode
    and position tokens do not drown the passed/defective signal of a model learning from scratch.

    ``mask``: the run's ``batching.LossMask`` (``make_collator``); its labels are cut further while the curriculum
    runs, and left as they are after it (and in ``loss_on="all"`` mode, which supervises everything)."""
    from transformers import TrainerCallback

    tok = mask.tokenizer

    def until(ids: list[int], s: int, e: int) -> int:
        """Where ``cut`` begins inside the answer ids[s:e] (``e`` if it does not occur)."""
        text, ends = "", []
        for j in range(s, e):
            text += tok.decode([ids[j]])
            ends.append(len(text))
        c = text.find(cut)
        return e if c < 0 else s + next(i for i, end in enumerate(ends) if end > c)

    class JudgementFirst(TrainerCallback):
        active = False                 # on from the start of training until ``steps`` steps have run

        def __call__(self, examples):
            batch = mask(examples)
            if self.active and mask.mode != "all":
                for b, ids in enumerate(batch["input_ids"].tolist()):
                    spans = mask.spans(ids)
                    if spans:
                        s, e = spans[-1]
                        batch["labels"][b, until(ids, s, e):e] = -100
            return batch

        def on_train_begin(self, args, state, control, **kw):
            self.active = state.global_step < steps

        def on_step_begin(self, args, state, control, **kw):
            self.active = state.global_step < steps

    return JudgementFirst()
