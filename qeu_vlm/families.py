"""What differs between the model families: how to recognise one, cap its images, and pick its LoRA targets.

Families: Qwen2.5-VL, Qwen3-VL, Llama-3.2-Vision (Mllama) and Pixtral (a Llava model with a Pixtral vision tower).

>>> family_of("qwen3-vl-4b")
'qwen3-vl'
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from .domain import IMAGE_SIZE
from .presets import PRESETS

FAMILIES = ("qwen2.5-vl", "qwen3-vl", "mllama", "pixtral")
MODEL_TYPES = {"qwen2_5_vl": "qwen2.5-vl", "qwen3_vl": "qwen3-vl", "mllama": "mllama"}   # config.json model_type

# LoRA targets are classified by the names of the modules on their path (see lora_targets).
VISION_PARTS = ("visual", "vision_model", "vision_tower", "multi_modal_projector")
ATTENTION_PARTS = ("attn", "self_attn", "cross_attn", "attention")
MLP_PARTS = ("mlp", "feed_forward")

MLLAMA_TILE = 560                  # Llama-3.2-Vision's tile side
MLLAMA_MAX_TILES = 4               # its processor's default, and the tile slots its vision tower is built for
PIXTRAL_MAX_EDGE = 1024            # Pixtral-12B's default longest edge: its 2D rotary table covers 1024 / 16 patches


class ModelError(ValueError):
    """A model name or folder that cannot be used; the message names it."""


def family_of(model: str) -> str:
    """The family of a preset name or of a local model folder (its config.json)."""
    name = str(model)
    if name in PRESETS:
        return PRESETS[name].family
    folder = Path(name)
    if not folder.is_dir():
        raise ModelError(f"unknown model {name!r}: neither a preset ({', '.join(PRESETS)}) nor a folder")
    config = folder / "config.json"
    if not config.is_file():
        extra = " (it holds a LoRA adapter: give the base model)" if (folder / "adapter_config.json").exists() else ""
        raise ModelError(f"model folder {name!r} has no config.json{extra}")
    try:
        cfg = json.loads(config.read_text())
    except (OSError, ValueError) as e:
        raise ModelError(f"model folder {name!r}: unreadable config.json ({e})") from e
    kind = cfg.get("model_type")
    vision = (cfg.get("vision_config") or {}).get("model_type")
    if kind == "llava" and vision == "pixtral":          # Pixtral-12B ships as Llava with a Pixtral vision tower
        return "pixtral"
    if kind in MODEL_TYPES:
        return MODEL_TYPES[kind]
    what = f"a {kind!r} model" + (f" with a {vision!r} vision tower" if vision else "")
    raise ModelError(f"model folder {name!r} holds {what}, not a vision-language model of a supported family "
                     f"({', '.join(FAMILIES)})")


def _check_family(family: str) -> None:
    if family not in FAMILIES:
        raise ModelError(f"unknown model family {family!r} (known: {', '.join(FAMILIES)})")


def mllama_tiles(max_pixels: int | None) -> int:
    """Llama-3.2-Vision's tile count for a pixel cap: whole 560x560 tiles, 1 to 4 (None: the default 4).

    >>> mllama_tiles(448 * 308), mllama_tiles(2 * 560 * 560), mllama_tiles(None)
    (1, 2, 4)
    """
    if max_pixels is None:
        return MLLAMA_MAX_TILES
    return min(MLLAMA_MAX_TILES, max(1, max_pixels // (MLLAMA_TILE * MLLAMA_TILE)))


def pixtral_longest_edge(max_pixels: int | None, width: int = IMAGE_SIZE[0], height: int = IMAGE_SIZE[1]) -> int:
    """Pixtral caps an image by its longest edge: the edge at which an image of the datasets' aspect holds
    ``max_pixels``, at most the default 1024 (None: 1024).

    >>> pixtral_longest_edge(512 * 352), pixtral_longest_edge(None)
    (513, 1024)
    """
    if max_pixels is None:
        return PIXTRAL_MAX_EDGE
    return min(PIXTRAL_MAX_EDGE, int(math.sqrt(max_pixels * max(width, height) / min(width, height))))


def _resized(size, **changes):
    # transformers 5 keeps `size` as a SizeDict, 4.x as a dict: a new one of the same type, never mutated in place
    # (transformers 5.17's __init__ may share the class-level default dict).
    return type(size)(**(dict(size) | changes))


def cap_images(processor, family: str, max_pixels: int | None):
    """Make the family's processor (or its image processor alone) cap images at ``max_pixels``, as the planner
    counts them; None leaves it as it is. Mutates the image processor; returns ``processor``."""
    _check_family(family)
    if max_pixels is None:
        return processor
    ip = getattr(processor, "image_processor", processor)
    if family in ("qwen2.5-vl", "qwen3-vl"):
        # transformers 5 resizes by size["longest_edge"] (the pixel cap) and size["shortest_edge"] (the floor). Its
        # min_pixels/max_pixels attributes do not exist unless someone sets them, and then override size: 5.24 either
        # one (with a deprecation warning), 5.17 only both together (max_pixels alone is ignored). 4.x keeps them
        # as attributes. So: size always, and the attributes where they exist, so that no reader disagrees.
        floor = min(ip.size["shortest_edge"], max_pixels)      # a floor above the cap would upscale past it
        ip.size = _resized(ip.size, shortest_edge=floor, longest_edge=max_pixels)
        for attr, value in (("min_pixels", floor), ("max_pixels", max_pixels)):
            if getattr(ip, attr, None) is not None:
                setattr(ip, attr, value)
    elif family == "mllama":
        # The processor pads every image to max_image_tiles slots, and the vision tower's tile embeddings are built
        # for exactly its max_num_tiles (4): fewer slots crash the forward. Every slot runs, padded or not, so a
        # smaller cap would save nothing either: refuse it rather than build a processor the model cannot take.
        tiles, slots = mllama_tiles(max_pixels), ip.max_image_tiles
        if tiles < slots:
            raise ModelError(f"max_pixels={max_pixels} means {tiles} tile(s) of {MLLAMA_TILE}x{MLLAMA_TILE}, but "
                             f"Llama-3.2-Vision takes exactly {slots} tile slots per image (fewer crash its vision "
                             f"tower, and all of them run anyway); use max_pixels >= {slots * MLLAMA_TILE ** 2} "
                             f"or None")
    else:                                               # pixtral: one longest edge for every image
        ip.size = _resized(ip.size, longest_edge=pixtral_longest_edge(max_pixels))
    return processor


def _part_and_kind(name: str) -> tuple[str, str] | None:
    """("vision" | "language", "attention" | "mlp") of a linear layer's full name; None: not a LoRA target."""
    parts = name.split(".")
    if "lm_head" in parts or any("embed" in p for p in parts):
        return None
    part = "vision" if any(p in VISION_PARTS for p in parts) else "language"
    if any(p in ATTENTION_PARTS for p in parts):
        return part, "attention"
    if any(p in MLP_PARTS or "merger" in p or "projector" in p for p in parts):
        return part, "mlp"
    return None


def lora_targets(model, vision: bool, language: bool, attention: bool, mlp: bool) -> list[str]:
    """Full names of the linear layers LoRA should wrap, following the four switches.

    Vision: anything under the vision tower (``visual``, ``vision_model``, ``vision_tower``) or the projector into
    the language model (Qwen's ``merger``s are inside ``visual``; ``multi_modal_projector``); language: the rest.
    Attention: under ``attn``/``self_attn``/``cross_attn``/``attention``; MLP: under ``mlp``/``feed_forward``, a
    merger or a projector. Never the output head or embeddings. Names, not module types, so a 4-bit model (whose
    linear layers subclass ``nn.Linear``) gets the same list."""
    import torch

    want = {("vision", "attention"): vision and attention, ("vision", "mlp"): vision and mlp,
            ("language", "attention"): language and attention, ("language", "mlp"): language and mlp}
    targets = [name for name, module in model.named_modules()
               if isinstance(module, torch.nn.Linear) and want.get(_part_and_kind(name), False)]
    if not targets:
        raise ModelError(f"no LoRA targets in {type(model).__name__}: finetune_vision={vision}, "
                         f"finetune_language={language}, finetune_attention={attention}, finetune_mlp={mlp} select "
                         f"no linear layer (turn on vision or language, and attention or mlp)")
    return targets
