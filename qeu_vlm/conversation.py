"""Record -> conversation: zero-shot (reference + test), one-shot (star turn first), composite.

Conversations carry PIL images inline (``{"type": "image", "image": img}``), as Unsloth's notebooks build them;
``with_image_list`` moves them to an ``images`` list with placeholders, the form both collators are given.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

from .answer import answer_for, format_answer, format_star_answer
from .data import Pools, decode
from .prompts import prompts

SHOTS = ("zero", "one", "composite")
SEPARATOR_PX = 12


def composite(reference: Image.Image, test: Image.Image) -> Image.Image:
    """Reference above test with a white separator bar, for single-image models."""
    w = max(reference.width, test.width)
    out = Image.new("RGB", (w, reference.height + SEPARATOR_PX + test.height), (255, 255, 255))
    out.paste(reference, (0, 0))
    out.paste(test, (0, reference.height + SEPARATOR_PX))
    return out


def _user(text, *images):
    return {"role": "user", "content": [{"type": "text", "text": text}]
            + [{"type": "image", "image": im} for im in images]}


def _assistant(text):
    return {"role": "assistant", "content": [{"type": "text", "text": text}]}


def to_conversation(record: dict, pools: Pools, shot: str, rng: np.random.Generator,
                    prompt_set: str = "default", with_answer: bool = True, size: tuple | None = None) -> dict:
    """One record as ``{"messages": [...], "shot": shot}``; without the final answer for inference.

    ``size``: resize every image to (width, height).
    """
    if shot not in SHOTS:
        raise ValueError(f"unknown shot mode {shot!r} (known: {', '.join(SHOTS)})")
    typ = record["type"]
    p = prompts(prompt_set)
    fit = (lambda im: im.resize(tuple(size), Image.BILINEAR)) if size else (lambda im: im)  # noqa: E731
    ref = fit(pools.passed[typ][rng.integers(len(pools.passed[typ]))])
    test = fit(decode(record["image"]))
    msgs = []
    if shot == "one":
        star, addr = pools.stars[typ][rng.integers(len(pools.stars[typ]))]
        msgs += [_user(p["STAR"], fit(star)), _assistant(format_star_answer(typ, addr))]
    if shot == "composite":
        msgs.append(_user(p[typ].replace("image2 and image3", "the upper and lower halves of the image")
                          .replace("Image2", "The upper half"), composite(ref, test)))
    else:
        msgs.append(_user(p[typ], ref, test))
    if with_answer:
        msgs.append(_assistant(format_answer(answer_for(record))))
    return {"messages": msgs, "shot": shot}


def shot_plan(n: int, one_shot_first: int | None = None, one_shot_fraction: float | None = None,
              rng: np.random.Generator | None = None, base: str = "zero") -> list[str]:
    """Which records are one-shot: the first N (as the original did) or a seeded random fraction."""
    if one_shot_first is not None:
        return ["one" if i < one_shot_first else base for i in range(n)]
    frac = one_shot_fraction or 0.0
    rng = rng or np.random.default_rng(0)
    return ["one" if u < frac else base for u in rng.random(n)]


def convert(records, pools: Pools, shots: list[str], seed: int = 0, prompt_set: str = "default",
            with_answer: bool = True, progress: bool = False, size: tuple | None = None) -> list[dict]:
    from huggingface_hub.utils import tqdm   # huggingface_hub's switch turns it off

    if len(shots) != len(records):
        raise ValueError(f"{len(shots)} shot modes for {len(records)} records")
    rng = np.random.default_rng(seed)
    return [to_conversation(r, pools, s, rng, prompt_set, with_answer, size)
            for r, s in tqdm(zip(records, shots), total=len(shots), desc="converting", disable=not progress)]


def images_of(conv: dict) -> list:
    return [c["image"] for m in conv["messages"] for c in m["content"] if c["type"] == "image"]


def as_text(conv: dict) -> str:
    """The conversation as a reader sees it: each turn's text, images as numbered ``<image N>`` marks."""
    out, n = [], 0
    for m in conv["messages"]:
        parts = []
        for c in m["content"]:
            if c["type"] == "image":
                n += 1
                parts.append(f"<image {n}: {c['image'].width}x{c['image'].height}>")
            else:
                parts.append(c["text"])
        out.append(f"[{m['role']}]\n" + "\n".join(parts))
    return "\n\n".join(out)


def with_image_list(conv: dict) -> dict:
    """Placeholders in the messages, the images in order in ``images``: the form TRL's collator reads, and the one
    Unsloth's collator passes to the processor as they are (inline images it first resamples to 28-px multiples, so
    its pixels would differ from TRL's)."""
    msgs = [{"role": m["role"], "content": [{"type": "image"} if c["type"] == "image" else c for c in m["content"]]}
            for m in conv["messages"]]
    return {"messages": msgs, "images": images_of(conv)}


def as_dataset(samples: list[dict]):
    """``with_image_list`` samples as the ``datasets.Dataset`` TRL's SFTTrainer takes, the images as they are.

    The messages are stored; each row's images stay in memory and are attached as the row is read
    (``Dataset.with_transform``). ``Dataset.from_list`` on the samples would encode every image to PNG, and the
    trainer decode it again at every step (most of a minute for the main job on CPU).
    """
    import datasets

    images = [s["images"] for s in samples]

    def attach(batch: dict) -> dict:
        return {"messages": batch["messages"], "images": [images[i] for i in batch["row"]]}

    stored = datasets.Dataset.from_dict({"messages": [s["messages"] for s in samples], "row": range(len(samples))})
    return stored.with_transform(attach)
