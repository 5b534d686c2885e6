"""Model presets: what to load, how large the images may be, and the GPU each is meant for.

Hub ids are Unsloth's published checkpoints (not downloadable here, so not verified offline).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Preset:
    hub_id: str
    family: str                  # "qwen2.5-vl", "qwen3-vl", "mllama", "pixtral"
    max_pixels: int              # image size cap (pixels per image)
    batch_size: int
    grad_accum: int
    max_length: int
    gpu: str                     # "T4" or "L4"
    load_in_4bit: bool = True


PRESETS = {
    # Default: Qwen handles several images natively and, capped at 448x308 per image, keeps one-shot
    # 3-image prompts small enough for a free 16 GB T4 (the original Llama choice overflowed it).
    "qwen2.5-vl-3b": Preset(
        "unsloth/Qwen2.5-VL-3B-Instruct-unsloth-bnb-4bit", "qwen2.5-vl", 448 * 308, 1, 8, 2048, "T4"
    ),
    "qwen2.5-vl-7b": Preset(
        "unsloth/Qwen2.5-VL-7B-Instruct-unsloth-bnb-4bit", "qwen2.5-vl", 448 * 308, 1, 8, 2048, "L4"
    ),
    "qwen3-vl-2b": Preset("unsloth/Qwen3-VL-2B-Instruct-unsloth-bnb-4bit", "qwen3-vl", 448 * 308, 2, 4, 2048, "T4"),
    "qwen3-vl-4b": Preset("unsloth/Qwen3-VL-4B-Instruct-unsloth-bnb-4bit", "qwen3-vl", 448 * 308, 1, 8, 2048, "T4"),
    "qwen3-vl-8b": Preset("unsloth/Qwen3-VL-8B-Instruct-unsloth-bnb-4bit", "qwen3-vl", 448 * 308, 1, 8, 2048, "L4"),
    # The original replay: batch 2 x accumulation 4, seq 2048; one-shot overflowed a T4, ran on an L4.
    # Its cap is the processor's default 4 tiles of 560x560: the vision tower is built for exactly 4 tile slots.
    "llama-3.2-11b-vision": Preset(
        "unsloth/Llama-3.2-11B-Vision-Instruct-bnb-4bit", "mllama", 4 * 560 * 560, 2, 4, 2048, "L4"
    ),
    "pixtral-12b": Preset("unsloth/Pixtral-12B-2409-bnb-4bit", "pixtral", 512 * 352, 1, 8, 2048, "L4"),
}
DEFAULT_PRESET = "qwen2.5-vl-3b"
