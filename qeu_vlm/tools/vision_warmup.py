"""Before fine-tuning, the vision tower learns where the mark is: each image token, which pin's mark it holds.

A language model reads image tokens through softmax attention, which starts as an average of them; through an average
a tower learning from scratch hardly learns to see one small mark, let alone where it is (benchmarks/RESULTS.md, the
learn profile and the pooling probe). So the tower first learns it directly: a linear head on every token says which
pin's mark lies in that token (one of 27, or none) and, for a bent pin, the bend's direction. Every token gets its own
gradient. The marks come from the data: a record's defect box (``bbox_str``, in the real datasets too) or the red star
of the pretraining images. The heads are then dropped; fine-tuning starts from a tower whose tokens carry the address.

Measured (benchmarks/RESULTS.md §1): on the rendered twin the head finds the defect's pin in 0.83-0.89 of images
after 150 steps of the star-pretrained tower, its patch embedding frozen. The stage runs a fixed number of steps, so
its outcome does not depend on the machine's speed. Used by the main job, the pretraining (``offline.pretrain``)
and the learn research.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np


class WarmupError(ValueError):
    pass


@dataclass
class Mark:
    """One warm-up image and its mark: ``where`` as fractions (x, y) of the image's width and height, ``pin`` its
    index in ``domain.ALL_ADDRESSES`` (both None for an image without a mark), ``mode`` 0 (none or unknown) or
    1 + the index of the bend's direction in ``domain.DEFECT_MODES``."""

    image: object
    where: tuple | None = None
    pin: int | None = None
    mode: int = 0


def marks_from_records(records, size: tuple | None = None, images: list | None = None) -> list[Mark]:
    """A record's test image, marked at its defect box's centre with its position and mode; a passed record is
    unmarked. A defective record whose box or position does not read is an error naming the record.

    ``images``: the records' test images already made (a conversation's, resized to ``size``), so that none is
    decoded twice."""
    from ..data import decode, opened
    from ..domain import ALL_ADDRESSES, DEFECT_MODES, PASSED, DomainError, parse_bbox, parse_position

    if images is not None and len(images) != len(records):
        raise WarmupError(f"{len(images)} images for {len(records)} records")
    if images is not None and hasattr(records, "cast_column"):
        import datasets

        records = records.cast_column("image", datasets.Image(decode=False))     # the size is all that is read
    out = []
    for i, r in enumerate(records):
        if images is None:
            img = decode(r["image"])
            w, h = img.size
            img = img.resize(tuple(size)) if size else img
        else:
            (w, h), img = opened(r["image"]).size, images[i]
        try:
            mode, (x1, y1, x2, y2) = parse_bbox(r["bbox_str"])
            addr = parse_position(r["position"])
        except (DomainError, ValueError, TypeError) as e:
            raise WarmupError(f"record {i}: {e}") from None
        if mode == PASSED or addr is None:
            out.append(Mark(img))
        else:
            out.append(Mark(img, ((x1 + x2) / 2 / w, (y1 + y2) / 2 / h), ALL_ADDRESSES.index(addr),
                            1 + DEFECT_MODES.index(mode)))
    return out


def vision_tower(model):
    """The model's vision tower (``...visual``), under any PEFT or wrapper prefix."""
    for name, module in model.named_modules():
        if name.split(".")[-1] == "visual":
            return module
    raise WarmupError(f"{type(model).__name__} has no 'visual' module to warm up")


def freeze(model, parts) -> None:
    """Stop training the vision tower's ``parts`` (names of its children: ``patch_embed``, ``blocks``, ``merger``)."""
    tower = vision_tower(model)
    children = dict(tower.named_children())
    unknown = [name for name in parts if name not in children]
    if unknown:                                   # checked first, so a bad name freezes nothing
        raise WarmupError(f"the vision tower has no part {unknown[0]!r} (it has: {', '.join(children)})")
    for name in parts:
        children[name].requires_grad_(False)


def image_tokens(tower, processor, images: list) -> tuple[list, list]:
    """Each image's tokens as the tower outputs them (after its merger), one (tokens, features) tensor per image,
    and each image's token grid (rows, columns); tokens are in row-major order."""
    param = next(tower.parameters())
    merge = getattr(processor.image_processor, "merge_size", 2)     # patches merged into one token, per side
    x = processor.image_processor(images=[im.convert("RGB") for im in images], return_tensors="pt")
    feats = tower(x["pixel_values"].to(param.device, param.dtype), grid_thw=x["image_grid_thw"].to(param.device))
    feats = getattr(feats, "pooler_output", feats)
    grids = [(int(h) // merge, int(w) // merge) for _, h, w in x["image_grid_thw"].tolist()]
    return list(feats.split([r * c for r, c in grids])), grids


def token_of(where: tuple, grid: tuple) -> int:
    """The token holding the point ``where`` (fractions of width and height) in a (rows, columns) grid.

    >>> token_of((0.0, 0.0), (6, 8)), token_of((0.99, 0.99), (6, 8)), token_of((0.5, 0.5), (6, 8))
    (0, 47, 28)
    """
    rows, cols = grid
    return min(int(where[1] * rows), rows - 1) * cols + min(int(where[0] * cols), cols - 1)


def warm_up_tokens(model, processor, marks: list[Mark], steps: int, lr: float, batch_size: int = 16,
                   seed: int = 0, window: int = 50) -> dict:
    """Train the tower of ``model`` in place for ``steps`` steps on batches of ``marks``.

    Returns ``{"seconds", "steps", "accuracy", "log"}``: ``accuracy`` is the share of marked images, over the last
    ``window`` steps, whose most marked token names the right pin; the log holds the heads' loss and that accuracy
    every 50 steps and at the last one.
    """
    import torch
    from huggingface_hub.utils import tqdm   # huggingface_hub's switch turns it off

    from ..domain import DEFECT_MODES, N_PINS

    if steps < 1 or batch_size < 1:
        raise WarmupError(f"steps and batch_size must be >= 1: got {steps}, {batch_size}")
    if not any(m.pin is not None for m in marks):
        raise WarmupError(f"none of the {len(marks)} warm-up images has a mark: nothing to learn where")
    tower = vision_tower(model)
    trainable = [p for p in tower.parameters() if p.requires_grad]
    if not trainable:
        raise WarmupError("the vision tower has no trainable weights (frozen, or finetune_vision=False)")
    param = trainable[0]
    rng = np.random.default_rng(seed)
    ce = torch.nn.functional.cross_entropy
    heads, opt, log, history, t0 = None, None, [], [], time.perf_counter()
    tower.train()
    for step in tqdm(range(1, steps + 1), desc="vision warm-up", leave=False):
        chosen = [marks[i] for i in rng.integers(0, len(marks), batch_size)]
        feats, grids = image_tokens(tower, processor, [m.image for m in chosen])
        if heads is None:
            dim = feats[0].shape[-1]
            heads = torch.nn.ModuleList([torch.nn.Linear(dim, N_PINS + 1), torch.nn.Linear(dim, len(DEFECT_MODES) + 1)])
            heads.to(param.device, param.dtype)
            opt = torch.optim.AdamW([*trainable, *heads.parameters()], lr=lr, weight_decay=0.0)
        loss, right, marked = 0.0, 0, 0
        for f, grid, m in zip(feats, grids, chosen):
            pin = torch.full((len(f),), N_PINS, device=f.device)       # N_PINS: no mark in this token
            mode = torch.zeros(len(f), dtype=torch.long, device=f.device)
            pin_logits, mode_logits = heads[0](f), heads[1](f)
            if m.pin is not None:
                k = token_of(m.where, grid)
                pin[k], mode[k] = m.pin, m.mode
                hot = torch.zeros(len(f), dtype=torch.bool, device=f.device)
                hot[k] = True
                # the marked token and the unmarked ones weigh alike, or "no mark everywhere" would be the easy answer
                loss = loss + ce(pin_logits[hot], pin[hot]) + ce(pin_logits[~hot], pin[~hot])
                if m.mode:
                    loss = loss + ce(mode_logits[hot], mode[hot])
                loss = loss + ce(mode_logits[~hot], mode[~hot])
                with torch.no_grad():
                    best = (1 - pin_logits.softmax(-1)[:, N_PINS]).argmax()
                    right += int(pin_logits[best, :N_PINS].argmax() == m.pin)
                    marked += 1
            else:
                loss = loss + ce(pin_logits, pin) + ce(mode_logits, mode)
        loss = loss / len(chosen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append((loss.item(), right, marked))
        if step % 50 == 0 or step == steps:
            last = history[-window:]
            log.append({"step": step, "loss": round(float(np.mean([h[0] for h in last])), 4),
                        "accuracy": round(sum(h[1] for h in last) / max(1, sum(h[2] for h in last)), 3)})
    tower.zero_grad(set_to_none=True)
    return {"seconds": round(time.perf_counter() - t0, 1), "steps": steps, "accuracy": log[-1]["accuracy"],
            "log": log}
