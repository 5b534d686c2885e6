"""The offline pretrained model: a ~4M-parameter Qwen2.5-VL that knows where the red star is, shipped with the package.

    python -m qeu_vlm.offline.pretrain --out qeu_vlm/offline/pretrained    # about 20 min on 2 CPU cores

A real VLM arrives knowing where things are in a picture (grounding pre-training); one built from random weights does
not, and a few hundred fine-tuning steps do not teach it the address (benchmarks/RESULTS.md, "main job"). So the main
job fine-tunes this model, pretrained once on a different task: the one-shot conversations' own, "where is the red
star?", on passed parts of the rendered twin (RAW and DST images, a star on a random pin, none on a fifth of them). It
has never seen a bent pin. Three stages, each a fixed number of steps:

1. the vision warm-up (``tools.vision_warmup``): every image token learns which pin's star it holds;
2. fine-tuning (TRL's ``SFTTrainer``) on one-image star conversations, until the language model reads the address
   off the star's token;
3. fine-tuning on a mix: one image, or a passed reference then the image, a fifth without a star ("none").

Stage 3 starts from stage 2 because the mix from the start is learned far more slowly (measured: star accuracy 0.41
after 1,000 steps against 0.99 after 800 + 200). The weights are saved in float16 (8 MB) beside a model card
(``README.md``, ``huggingface_hub.ModelCard``) holding the recipe and the held-out star accuracy. ``--smoke``: the same
stages, a few steps, the smoke size.
"""
from __future__ import annotations

import argparse
import io
import json
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

PRETRAINED = Path(__file__).with_name("pretrained")
PROMPT = ("Is there a red star on a pin of the last image? Give the image type, quantity of pins and the star's "
          "position (none if there is no star).")
NO_STAR = "none"


class PretrainError(ValueError):
    pass


@dataclass
class Recipe:
    n_images: int = 4000          # star images for training (half DST, half RAW); n_held_out more are scored
    n_held_out: int = 200
    no_star: float = 0.2          # share without a star (stage 3; stages 1-2 use only starred images)
    references: int = 20          # passed images per type, the references of two-image conversations
    size: tuple = (224, 154)      # every image resized to this before the processor (48 tokens)
    model_size: str = "learn"
    warmup_steps: int = 400
    single_steps: int = 500       # stage 2
    mix_steps: int = 400          # stage 3
    lr: float = 1e-3              # stages 1 and 2; stage 3 at half
    batch_size: int = 8
    seed: int = 0


SMOKE = dict(n_images=24, n_held_out=8, references=2, model_size="smoke", warmup_steps=2, single_steps=2, mix_steps=2,
             batch_size=2)


@dataclass
class StarImage:
    """A twin image with a red star on one pin, or none: its ``Mark`` for the warm-up and its image type."""

    mark: object                  # tools.vision_warmup.Mark
    image_type: str

    @property
    def answer(self) -> str:
        from ..answer import format_star_answer
        from ..domain import ALL_ADDRESSES

        return format_star_answer(self.image_type,
                                  NO_STAR if self.mark.pin is None else ALL_ADDRESSES[self.mark.pin].canonical)


def _finish(img, rc, size):
    from PIL import Image

    from ..twin.render import jpeg_bytes

    # the twin's records go through JPEG too; the pretraining sees the same artefacts
    return Image.open(io.BytesIO(jpeg_bytes(img, rc.jpeg_quality))).convert("RGB").resize(tuple(size), Image.BILINEAR)


def star_images(n: int, seed: int, size=(224, 154), no_star: float = 0.0) -> list[StarImage]:
    """``n`` passed parts of the rendered twin, half RAW and half DST, each with a star on a random pin (none on a
    share ``no_star`` of them), as the twin writes its records (JPEG) and resized to ``size``."""
    from ..domain import N_PINS
    from ..tools.vision_warmup import Mark
    from ..twin.render import Pose, RenderConfig, draw_star, dst_of, render_scene

    rc, rng, out = RenderConfig(), np.random.default_rng(seed), []
    for _ in range(n):
        pose = Pose.random(rng, rc)
        rend = render_scene(pose)
        kind = "DST" if rng.random() < 0.5 else "RAW"
        img = dst_of(rend, pose, rng, rc) if kind == "DST" else rend.image
        w, h = img.size
        if rng.random() < no_star:
            out.append(StarImage(Mark(_finish(img, rc, size)), f"CYLN_{kind}"))
            continue
        pin = int(rng.integers(N_PINS))
        img = draw_star(img.copy(), rend.tips[pin])
        x, y = rend.tips[pin]
        out.append(StarImage(Mark(_finish(img, rc, size), (x / w, y / h), pin), f"CYLN_{kind}"))
    return out


def reference_images(n: int, seed: int, size=(224, 154)) -> dict:
    """``n`` passed parts per image type, without a star: the references of two-image conversations."""
    from ..twin.render import Pose, RenderConfig, dst_of, render_scene

    rc, rng, out = RenderConfig(), np.random.default_rng(seed), {"CYLN_DST": [], "CYLN_RAW": []}
    for _ in range(n):
        pose = Pose.random(rng, rc)
        rend = render_scene(pose)
        dst = dst_of(rend, pose, rng, rc)
        out["CYLN_DST"].append(_finish(dst, rc, size))
        out["CYLN_RAW"].append(_finish(rend.image, rc, size))
    return out


def conversation(star: StarImage, reference=None, with_answer: bool = True) -> dict:
    """The star question about ``star``'s image, after a passed ``reference`` when one is given."""
    images = ([reference] if reference is not None else []) + [star.mark.image]
    msgs = [{"role": "user", "content": [{"type": "text", "text": PROMPT}]
             + [{"type": "image", "image": im} for im in images]}]
    if with_answer:
        msgs.append({"role": "assistant", "content": [{"type": "text", "text": star.answer}]})
    return {"messages": msgs, "shot": "star"}


def mixed(stars: list[StarImage], refs: dict, seed: int, with_answer: bool = True, two=None) -> list[dict]:
    """Each star image alone or after a passed reference of its type (``two``: always / never; None: by a coin)."""
    rng = np.random.default_rng(seed)
    out = []
    for s in stars:
        pool = refs[s.image_type]
        ref = pool[rng.integers(len(pool))]
        use = rng.random() < 0.5 if two is None else two
        out.append(conversation(s, ref if use else None, with_answer))
    return out


def read_star(text: str) -> str | None:
    """The star's position in an answer (``"none"`` for no star), or None when it does not read; never raises.

    >>> read_star("- image type->CYLN_DST\\n- quantity of pins->27 pins\\n- position of star->X:3, Y:U")
    'X:3, Y:U'
    >>> read_star("- position of star->none"), read_star("garbage")
    ('none', None)
    """
    from ..answer import read_position

    for line in text.splitlines():
        if "star" in line and "->" in line:
            value = line.split("->", 1)[1].strip()
            return NO_STAR if value.lower() == NO_STAR else read_position(value)
    return None


def star_accuracy(model, processor, stars: list[StarImage], convs: list[dict], batch_size: int = 16) -> dict:
    """Share of star images whose answer names the star's pin, of those without a star answered "none", and the
    number of distinct answers."""
    from ..domain import ALL_ADDRESSES
    from ..generation import generate

    texts = [t for t, _ in generate(model, processor, convs, batch_size=batch_size, max_new_tokens=40,
                                    progress=False)]
    got = [read_star(t) for t in texts]
    truth = [NO_STAR if s.mark.pin is None else ALL_ADDRESSES[s.mark.pin].canonical for s in stars]
    starred = [g == t for g, t in zip(got, truth) if t != NO_STAR]
    empty = [g == t for g, t in zip(got, truth) if t == NO_STAR]
    return {"star": round(float(np.mean(starred)), 3) if starred else None,
            "no_star": round(float(np.mean(empty)), 3) if empty else None,
            "distinct": len(set(got)), "example": texts[0]}


def _config(model_path: Path, run: Path, recipe: Recipe, steps: int, lr: float):
    from ..config import Config

    return Config(model=str(model_path), backend="hf", full_finetune=True, run_dir=str(run), seed=recipe.seed,
                  batch_size=recipe.batch_size, grad_accum=1, learning_rate=lr, lr_schedule="cosine", warmup_steps=20,
                  max_steps=steps, eval_steps=0, save_steps=10**6, logging_steps=50, max_length=512,
                  gradient_checkpointing=False, image_size=tuple(recipe.size))


def pretrain(out, recipe: Recipe | None = None, log=print) -> dict:
    """Build and pretrain the model into ``out`` (written whole or not at all); returns the model card's figures."""
    import torch

    from ..files import check_writable, staged
    from ..training import train
    from ..tools.vision_warmup import warm_up_tokens
    from .tiny_model import build_tiny_vlm, load_tiny_vlm

    recipe = recipe or Recipe()
    if min(recipe.n_images, recipe.n_held_out, recipe.references, recipe.batch_size) < 1 or \
            min(recipe.warmup_steps, recipe.single_steps, recipe.mix_steps) < 1 or not 0 <= recipe.no_star < 1:
        raise PretrainError(f"every count and step number must be >= 1 and no_star in [0, 1): {recipe}")
    out = check_writable(out)
    t0, seconds = time.perf_counter(), {}
    # the from-scratch build and the trainer's stage folders live in a scratch folder; only the model lands in out
    with staged(out) as work, tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        stars = star_images(recipe.n_images, recipe.seed + 1, recipe.size)
        mix = star_images(recipe.n_images, recipe.seed + 2, recipe.size, recipe.no_star)
        held = star_images(recipe.n_held_out, recipe.seed + 3, recipe.size, recipe.no_star)
        refs = reference_images(recipe.references, recipe.seed + 4, recipe.size)
        # the processor normalises with the pretraining images' own statistics
        px = np.stack([np.asarray(s.mark.image, np.float32) / 255 for s in stars[:200]])
        stats = {"image_mean": px.mean((0, 1, 2)).round(3).tolist(), "image_std": px.std((0, 1, 2)).round(3).tolist()}
        seconds["images"] = round(time.perf_counter() - t0, 1)
        log(f"{len(stars) + len(mix) + len(held)} star images in {seconds['images']} s")

        build = scratch / "build"
        build_tiny_vlm(build, seed=recipe.seed, max_pixels=224 * 168, size=recipe.model_size,
                       lecun_init=True, **stats)
        model, processor = load_tiny_vlm(build)
        model.float()
        warm = warm_up_tokens(model, processor, [s.mark for s in stars], recipe.warmup_steps, recipe.lr,
                              batch_size=2 * recipe.batch_size, seed=recipe.seed)
        log(f"stage 1, vision warm-up: {warm['steps']} steps, pin found in {warm['accuracy']} of images")
        single = [conversation(s) for s in stars]
        trainer = train(_config(build, scratch / "stage2", recipe, recipe.single_steps, recipe.lr), single, [],
                        scratch / "stage2", resume=False, model=model, processor=processor)
        log(f"stage 2, one-image star conversations: {recipe.single_steps} steps")
        trainer = train(_config(build, scratch / "stage3", recipe, recipe.mix_steps, recipe.lr / 2),
                        mixed(mix, refs, recipe.seed), [], scratch / "stage3", resume=False, model=trainer.model,
                        processor=processor)
        log(f"stage 3, the mix: {recipe.mix_steps} steps")
        model = trainer.model.eval()
        scores = {form: star_accuracy(model, processor, held, mixed(held, refs, recipe.seed + 5, False, two))
                  for form, two in (("one image", False), ("reference, then the image", True))}
        seconds["total"] = round(time.perf_counter() - t0, 1)
        figures = {"recipe": asdict(recipe), "held_out": scores, "vision_warmup": warm["log"], "seconds": seconds,
                   "torch_threads": torch.get_num_threads()}
        model.to(torch.float16).save_pretrained(work)
        processor.save_pretrained(work)
        (work / "pretraining.json").write_text(json.dumps(figures, indent=1))
        model_card(figures).save(work / "README.md")
    return figures


def model_card(figures: dict):
    """The model card (``huggingface_hub.ModelCard``): what the model is, how it was made, its held-out scores."""
    from huggingface_hub import ModelCard, ModelCardData

    r, held = figures["recipe"], figures["held_out"]
    rows = "\n".join(f"| {form} | {s['star']} | {s['no_star']} | {s['distinct']} |" for form, s in held.items())
    data = ModelCardData(license="apache-2.0", library_name="transformers", pipeline_tag="image-text-to-text",
                         tags=["qeu_vlm", "offline", "qwen2_5_vl"])
    return ModelCard(f"""---
{data.to_yaml()}
---
# qeu_vlm offline pretrained model

A Qwen2.5-VL-style model of about 4M parameters, built from random weights and pretrained on CPU to say where a red
star sits on the twin's 27-pin connector (`python -m qeu_vlm.offline.pretrain`, `qeu_vlm/offline/pretrain.py`). The
main job fine-tunes it to inspect; it has never seen a bent pin. Float16 weights; load in float32 on a CPU.

Recipe: {r['n_images']} star images per stage at {r['size'][0]}x{r['size'][1]}; vision warm-up {r['warmup_steps']}
steps, one-image star conversations {r['single_steps']} steps, then the mix (a passed reference first on half, no
star on {r['no_star']:.0%}) {r['mix_steps']} steps; learning rate {r['lr']}, batch {r['batch_size']}, seed {r['seed']};
{figures['seconds']['total']:.0f} s with torch using {figures['torch_threads']} threads.

## Held-out star images ({r['n_held_out']})

| conversation | star's pin named | "none" when no star | distinct answers |
|---|---|---|---|
{rows}
""")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m qeu_vlm.offline.pretrain", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(PRETRAINED), help="folder to write (replaced whole when done)")
    p.add_argument("--smoke", action="store_true", help="the same stages, a few steps, the smoke model")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    a = p.parse_args(argv)
    import torch

    if a.threads is not None:
        if a.threads < 1:
            p.error(f"--threads must be >= 1, got {a.threads}")
        torch.set_num_threads(a.threads)
    figures = pretrain(a.out, replace(Recipe(), **SMOKE) if a.smoke else Recipe())
    print(json.dumps(figures["held_out"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
