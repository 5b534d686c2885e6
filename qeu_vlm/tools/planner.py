"""Know before you run: image tokens, sequence length and an estimated peak VRAM, with a verdict per GPU.

The original experiments found out what fits by running out of memory: one-shot Llama-3.2-11B-Vision overflowed
a 16 GB T4. This estimates instead, from each family's own image rules and the model's dimensions.

>>> plan("qwen2.5-vl-3b", shot="one").verdicts["T4"]
'fits'
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from ..domain import IMAGE_SIZE
from ..families import mllama_tiles, pixtral_longest_edge
from ..presets import PRESETS

GIB = 2**30
GPUS = {"T4": 15.0, "L4": 22.0, "A100": 40.0}     # GiB usable (the cards' 16/24/40 GB less the CUDA context)
IMAGE = IMAGE_SIZE                                 # the datasets' image size (width, height)
IMAGES = {"zero": 2, "one": 3, "composite": 1}
QWEN_MAX_PIXELS = 28 * 28 * 1280   # Qwen-VL processors' default cap
CHARS_PER_TOKEN = 4.0            # English prose in the real BPE vocabularies (no real tokenizer offline to count)


def text_tokens(shot: str, prompt_set: str = "default") -> int:
    """Prompt, chat template and answer tokens of one sample (images excluded)."""
    from ..answer import Answer, format_answer, format_star_answer
    from ..prompts import prompts

    p = prompts(prompt_set)
    chars = len(p["CYLN_DST"]) + len(format_answer(Answer("CYLN_DST", 27, "defective", "X-plus", "X:9, Y:C")))
    turns = 2
    if shot == "one":
        chars += len(p["STAR"]) + len(format_star_answer("CYLN_DST", "X:1, Y:U"))
        turns += 2
    return int(chars / CHARS_PER_TOKEN) + 5 * turns + 20      # role markers per turn, system prompt


@dataclass(frozen=True)
class Arch:
    """What memory depends on. Sizes from each model's published config.json."""

    family: str
    hidden: int
    layers: int
    intermediate: int
    vocab: int
    kv_ratio: float              # key/value heads / attention heads
    v_hidden: int
    v_layers: int
    v_intermediate: int
    params_b: float              # total parameters, billions
    cross_layers: int = 0        # mllama: cross-attention layers reading the vision states


ARCHS = {
    "qwen2.5-vl-3b": Arch("qwen2.5-vl", 2048, 36, 11008, 151936, 2 / 16, 1280, 32, 3420, 3.75),
    "qwen2.5-vl-7b": Arch("qwen2.5-vl", 3584, 28, 18944, 152064, 4 / 28, 1280, 32, 3420, 8.29),
    "qwen3-vl-2b": Arch("qwen3-vl", 2048, 28, 6144, 151936, 8 / 16, 1024, 24, 4096, 2.13),
    "qwen3-vl-4b": Arch("qwen3-vl", 2560, 36, 9728, 151936, 8 / 32, 1024, 24, 4096, 4.44),
    "qwen3-vl-8b": Arch("qwen3-vl", 4096, 36, 12288, 151936, 8 / 32, 1152, 27, 4304, 8.77),
    "llama-3.2-11b-vision": Arch("mllama", 4096, 40, 14336, 128256, 8 / 32, 1280, 40, 5120, 10.67, cross_layers=8),
    "pixtral-12b": Arch("pixtral", 5120, 40, 14336, 131072, 8 / 32, 1024, 24, 4096, 12.68),
    # the original series' Qwen2-VL-7B (not a preset; for calibration)
    "qwen2-vl-7b": Arch("qwen2.5-vl", 3584, 28, 18944, 152064, 4 / 28, 1280, 32, 5120, 8.29),
}


# -- image tokens, by each family's own rules ------------------------------------------------------------------
@dataclass(frozen=True)
class ImageCost:
    text_tokens: int             # tokens the image adds to the text sequence
    vision_tokens: int           # tokens the vision tower processes (padded tiles included)
    size: tuple                  # (width, height) the processor resizes to


def smart_resize(height: int, width: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """Qwen-VL: round each side to the merged-patch size, then scale into [min_pixels, max_pixels]."""
    h, w = max(factor, round(height / factor) * factor), max(factor, round(width / factor) * factor)
    if h * w > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h = max(factor, math.floor(height / beta / factor) * factor)
        w = max(factor, math.floor(width / beta / factor) * factor)
    elif h * w < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h, w = math.ceil(height * beta / factor) * factor, math.ceil(width * beta / factor) * factor
    return h, w


def mllama_canvas(height: int, width: int, max_tiles: int = 4, tile: int = 560) -> tuple[int, int]:
    """Llama-3.2-Vision: the tile arrangement needing the least upscaling (else the least downscaling)."""
    options = [(a, b) for a in range(1, max_tiles + 1) for b in range(1, max_tiles + 1) if a * b <= max_tiles]
    scales = [(min(a * tile / height, b * tile / width), a * b, (a, b)) for a, b in options]
    up = [s for s in scales if s[0] >= 1]
    best = min(up, key=lambda s: (s[0], s[1])) if up else max(scales, key=lambda s: (s[0], -s[1]))
    return best[2]


def image_cost(family: str, width: int = IMAGE[0], height: int = IMAGE[1], max_pixels: int | None = None,
               min_pixels: int = 56 * 56) -> ImageCost:
    if family in ("qwen2.5-vl", "qwen3-vl"):
        patch = 14 if family == "qwen2.5-vl" else 16
        h, w = smart_resize(height, width, patch * 2, min_pixels, max_pixels or QWEN_MAX_PIXELS)
        merged = (h // (patch * 2)) * (w // (patch * 2))
        return ImageCost(merged + 2, merged * 4, (w, h))           # + vision start/end; 2x2 patches merge to one
    if family == "mllama":
        tiles = mllama_tiles(max_pixels)
        rows, cols = mllama_canvas(height, width, tiles)
        per_tile = (560 // 14) ** 2 + 1
        per_tile += (8 - per_tile % 8) % 8                         # padded to a multiple of 8
        return ImageCost(1, tiles * per_tile, (cols * 560, rows * 560))  # every tile slot runs, padded ones masked
    if family == "pixtral":
        longest = pixtral_longest_edge(max_pixels)                 # one cap for every image, as the processor's
        ratio = max(height / longest, width / longest, 1.0)
        h, w = int(height / ratio), int(width / ratio)
        rows, cols = math.ceil(h / 16), math.ceil(w / 16)
        return ImageCost(rows * cols + rows, rows * cols, (cols * 16, rows * 16))  # a break (or end) per row
    raise ValueError(f"unknown model family {family!r} (known: qwen2.5-vl, qwen3-vl, mllama, pixtral)")


# -- memory ----------------------------------------------------------------------------------------------------
@dataclass
class Setting:
    """One training configuration to estimate."""

    preset: str
    shot: str = "one"
    max_pixels: int | None = None
    batch: int | None = None
    grad_accum: int | None = None
    load_in_4bit: bool = True
    lora_r: int = 16
    finetune_vision: bool = True
    finetune_language: bool = True
    checkpointing: str = "unsloth"          # "unsloth" (offloaded), "standard", "none"
    vision_16bit: bool = True               # assumed: 4-bit loading leaves the vision tower in 16-bit (unverified)


@dataclass
class Plan:
    setting: Setting
    image: ImageCost
    seq_len: int                 # text tokens per sample
    batch_tokens: int
    gib: dict = field(default_factory=dict)   # component -> GiB
    verdicts: dict = field(default_factory=dict)
    fixes: dict = field(default_factory=dict)  # GPU -> the cheapest change that fits, where it does not

    @property
    def peak_gib(self) -> float:
        return round(sum(self.gib.values()), 2)

    def __str__(self):
        s = self.setting
        head = (f"{s.preset}, {s.shot}-shot, batch {s.batch}, image {self.image.size[0]}x{self.image.size[1]} "
                f"({self.image.text_tokens} tokens/image), {self.seq_len} tokens/sample: peak ~{self.peak_gib} GiB")
        parts = ", ".join(f"{k} {v:.2f}" for k, v in self.gib.items())
        verdict = "; ".join(f"{g}: {v}" + (f" (fix: {self.fixes[g]})" if g in self.fixes else "")
                            for g, v in self.verdicts.items())
        return f"{head}\n  {parts}\n  {verdict}"


def _lora_params(a: Arch, s: Setting) -> int:
    kv = int(a.hidden * a.kv_ratio)
    per_layer = s.lora_r * ((a.hidden + a.hidden) * 2 + (a.hidden + kv) * 2    # q, o; k, v
                            + (a.hidden + a.intermediate) * 3)                  # gate, up, down
    v_layer = s.lora_r * ((a.v_hidden * 4) * 2 + (a.v_hidden + a.v_intermediate) * 2)
    return per_layer * a.layers * s.finetune_language + v_layer * a.v_layers * s.finetune_vision


def estimate(s: Setting) -> Plan:
    a = ARCHS[s.preset]
    p = PRESETS.get(s.preset)                     # None for calibration-only architectures
    s = replace(s, batch=s.batch or (p.batch_size if p else 1), grad_accum=s.grad_accum or (p.grad_accum if p else 1),
                max_pixels=s.max_pixels or (p.max_pixels if p else None))
    img = image_cost(a.family, max_pixels=s.max_pixels)
    n_img = IMAGES[s.shot]
    seq = text_tokens(s.shot) + n_img * img.text_tokens
    vis = n_img * img.vision_tokens * s.batch
    embed = a.vocab * a.hidden * (1 if a.family.startswith("qwen") and a.hidden <= 2048 else 2)   # small Qwens tie
    vision = a.v_layers * (4 * a.v_hidden**2 + 3 * a.v_hidden * a.v_intermediate)
    linear = a.params_b * 1e9 - embed - (vision if s.vision_16bit else 0)
    weights = (linear * (0.5 * 1.07 if s.load_in_4bit else 2) + (embed + (vision if s.vision_16bit else 0)) * 2) / GIB
    lora = _lora_params(a, s)
    keep = {"unsloth": 0.25, "standard": 1.0, "none": None}[s.checkpointing]   # unsloth offloads checkpoints to RAM
    tok = seq * s.batch
    per_layer_full = tok * (a.hidden * 10 + a.intermediate * 4) * 2           # one layer's activations, bf16/fp16
    text_act = (per_layer_full * a.layers if keep is None
                else tok * a.hidden * 2 * a.layers * keep + per_layer_full)
    v_full = vis * (a.v_hidden * 10 + a.v_intermediate * 4) * 2
    vision_act = v_full * a.v_layers if keep is None else vis * a.v_hidden * 2 * a.v_layers * keep + v_full
    cross = vis * a.hidden * 2 * 2 * a.cross_layers                           # mllama: K/V of the vision states
    logits = tok * a.vocab * 4 / 8                                             # chunked fp32 loss (Unsloth's fused CE)
    gib = {"weights": weights, "lora+optimizer": lora * (2 + 2 + 4 + 2) / GIB, "text activations": text_act / GIB,
           "vision activations": (vision_act + cross) / GIB, "logits": logits / GIB, "overhead": 0.6}
    plan = Plan(s, img, seq, tok, {k: round(v, 3) for k, v in gib.items()})
    plan.verdicts = {g: "fits" if plan.peak_gib <= cap else "does not fit" for g, cap in GPUS.items()}
    return plan


def cheapest_fix(s: Setting, gpu: str) -> str | None:
    """The first single change, cheapest first, that brings the estimate under the GPU's memory."""
    cap = GPUS[gpu]
    p = estimate(s)
    b = p.setting.batch
    tries = []
    if b > 1:
        tries.append((f"batch 1 with accumulation x{b} (same effective batch, slower)",
                      replace(p.setting, batch=1, grad_accum=p.setting.grad_accum * b)))
    pixels = p.setting.max_pixels or QWEN_MAX_PIXELS
    for frac in (0.5, 0.25):
        mp = int(pixels * frac)
        if ARCHS[s.preset].family != "mllama":
            tries.append((f"image cap max_pixels={mp}", replace(p.setting, max_pixels=mp)))
    if p.setting.finetune_vision:
        tries.append(("finetune_vision=False (language layers only)", replace(p.setting, finetune_vision=False)))
    if p.setting.lora_r > 8:
        tries.append(("lora_r=8", replace(p.setting, lora_r=8)))
    if b > 1:
        tries.append(("batch 1 + image cap halved",
                      replace(p.setting, batch=1, grad_accum=p.setting.grad_accum * b,
                              max_pixels=int(pixels * 0.5))))
    for what, t in tries:
        if estimate(t).peak_gib <= cap:
            return what
    return None


def plan(preset: str, gpus=tuple(GPUS), **kw) -> Plan:
    """Estimate a setting and, for each GPU it does not fit, the cheapest change that makes it fit."""
    s = Setting(preset, **kw)
    p = estimate(s)
    for g in gpus:
        if p.verdicts[g] != "fits":
            p.fixes[g] = cheapest_fix(s, g) or "nothing single fits: a larger GPU"
    return p


def memory_check(cfg, lengths: list[int], backend: str) -> str:
    """The pre-training check: on a GPU, warn when the estimate does not fit it (naming the fix); on CPU, report
    the token budget. ``backend``: "unsloth" or "hf" (which checkpointing runs). Returns the message it logged."""
    import logging

    import torch

    n = len(lengths)
    budget = (f"token budget: {n} samples, {min(lengths)}-{max(lengths)} tokens (mean {sum(lengths) / n:.0f})"
              if n else "token budget: no samples")
    msg = budget
    if torch.cuda.is_available() and cfg.model in ARCHS:
        total = torch.cuda.get_device_properties(0).total_memory / GIB - 1.0
        shot = "one" if cfg.one_shot_first else "zero"
        mode = ("unsloth" if backend == "unsloth" else "standard") if cfg.gradient_checkpointing else "none"
        p = estimate(Setting(cfg.model, shot, cfg.max_pixels, cfg.batch_size, cfg.grad_accum, lora_r=cfg.lora_r,
                             finetune_vision=cfg.finetune_vision, finetune_language=cfg.finetune_language,
                             checkpointing=mode))
        if p.peak_gib > total:
            gpu = min(GPUS, key=lambda g: abs(GPUS[g] - total))
            fix = cheapest_fix(p.setting, gpu) or "a larger GPU"
            msg = (f"WARNING: estimated peak {p.peak_gib} GiB exceeds this GPU's {total:.1f} GiB; "
                   f"cheapest change that fits: {fix}. {budget}")
            logging.getLogger("qeu_vlm").warning(msg)
            print(msg)
            return msg
        msg = f"estimated peak {p.peak_gib} GiB of {total:.1f} GiB. {budget}"
    logging.getLogger("qeu_vlm").info(msg)
    print(msg)
    return msg
