"""A tiny, randomly initialised Qwen2.5-VL built offline: for tests, smoke runs and the main job.

Same architecture family as the real default, a BPE tokenizer trained here on the task's own text,
the real Qwen2-VL chat template, and an image-only processor (the video processor needs torchvision,
which has no CPU build). Saved with ``save_pretrained``; reloads with ``HF_HUB_OFFLINE=1``.

Use::

    path = build_tiny_vlm("/tmp/tiny")
    model, processor = load_tiny_vlm(path)
"""
from __future__ import annotations

from pathlib import Path

# The chat template Qwen2-VL / Qwen2.5-VL Instruct checkpoints ship.
QWEN_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: "
    "{% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                  "<|image_pad|>", "<|video_pad|>"]


def _corpus() -> list[str]:
    from ..answer import Answer, format_answer, format_star_answer
    from ..domain import ALL_ADDRESSES, DEFECT_MODES, IMAGE_TYPES
    from ..prompts import PROMPT_SETS

    texts = [t for s in PROMPT_SETS.values() for t in s.values()] + ["You are a helpful assistant.", "system", "user",
                                                                      "assistant"]
    for typ in IMAGE_TYPES:
        texts.append(format_answer(Answer(typ, 27, "passed", "passed", "passed")))
        for a in ALL_ADDRESSES:
            texts.append(format_star_answer(typ, a.canonical))
            texts += [format_answer(Answer(typ, 27, "defective", m, a.canonical)) for m in DEFECT_MODES]
    return texts


def build_tokenizer(vocab_size: int = 600):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_corpus(), trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   bos_token=None, chat_template=QWEN_VL_CHAT_TEMPLATE,
                                   extra_special_tokens={"image_token": "<|image_pad|>", "video_token": "<|video_pad|>",
                                                         "vision_bos_token": "<|vision_start|>",
                                                         "vision_eos_token": "<|vision_end|>"})


def _image_processor_class():
    try:                                           # transformers 5: PIL backend, no torchvision
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil as IP
    except ImportError:                            # transformers 4.x (Colab's Unsloth pins): the slow processor
        from transformers import Qwen2VLImageProcessor as IP
    return IP


def _image_processor(max_pixels: int, image_mean=None, image_std=None, patch_size: int = 14):
    # A from-scratch model may normalise with its own data's statistics; the default is CLIP's, as Qwen's.
    stats = {"image_mean": image_mean, "image_std": image_std} if image_mean else {}
    side = 2 * patch_size                          # one merged patch: 28 px (Qwen2.5-VL), 32 px (Qwen3-VL)
    return _image_processor_class()(min_pixels=side * side, max_pixels=max_pixels, patch_size=patch_size, **stats)


def build_processor(max_pixels: int = 224 * 160, image_mean=None, image_std=None, patch_size: int = 14):
    from ..model import image_only_processor_class

    return image_only_processor_class()(image_processor=_image_processor(max_pixels, image_mean, image_std, patch_size),
                                        tokenizer=build_tokenizer(),
                                        chat_template=QWEN_VL_CHAT_TEMPLATE)


def mrope_sections(head_dim: int) -> list[int]:
    """Split a head's rotary half into (time, height, width) in the real 16:24:24 proportions.

    >>> mrope_sections(128), mrope_sections(32)
    ([16, 24, 24], [4, 6, 6])
    """
    half = head_dim // 2
    time = half // 4
    height = (half - time) // 2
    return [time, height, half - time - height]


def tiny_config(tokenizer, text_hidden: int = 64, text_layers: int = 2, vision_hidden: int = 32,
                vision_depth: int = 2, rope_theta: float = 10000.0, mrope_section: list | None = None,
                lecun_init: bool = False):
    """``lecun_init``: initialise weights with std 1/sqrt(width) (0.0625 text, 0.088 vision at the learn size)
    instead of the 0.02 that the real, much wider checkpoints use."""
    from transformers import Qwen2_5_VLConfig

    heads = max(2, text_hidden // 32)
    mrope = mrope_section or mrope_sections(text_hidden // heads)
    ids = tokenizer.convert_tokens_to_ids
    text_std, vision_std = (text_hidden ** -0.5, vision_hidden ** -0.5) if lecun_init else (0.02, 0.02)
    return Qwen2_5_VLConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=text_hidden, intermediate_size=2 * text_hidden,
                         num_hidden_layers=text_layers, num_attention_heads=heads, num_key_value_heads=heads,
                         max_position_embeddings=4096,
                         rope_parameters={"rope_type": "default", "mrope_section": mrope, "rope_theta": rope_theta},
                         tie_word_embeddings=True, bos_token_id=None, eos_token_id=ids("<|im_end|>"),
                         pad_token_id=ids("<|endoftext|>"), initializer_range=text_std),
        vision_config=dict(depth=vision_depth, hidden_size=vision_hidden, intermediate_size=2 * vision_hidden,
                           num_heads=2, out_hidden_size=text_hidden, patch_size=14, spatial_merge_size=2,
                           temporal_patch_size=2, window_size=112, fullatt_block_indexes=[vision_depth - 1],
                           initializer_range=vision_std),
        image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"), vision_end_token_id=ids("<|vision_end|>"),
        tie_word_embeddings=True, initializer_range=text_std,
    )


# DST images are dark: a model reading only them normalises with their own statistics, so the blob is not drowned by
# the background (``build_tiny_vlm(..., **DST_STATS[look])``), per look of the twin (measured on 40 images each).
DST_STATS = {"schematic": {"image_mean": [0.10, 0.12, 0.12], "image_std": [0.17, 0.19, 0.19]},
             "rendered": {"image_mean": [0.08, 0.08, 0.13], "image_std": [0.12, 0.13, 0.14]}}

SIZES = {
    "smoke": dict(text_hidden=64, text_layers=2, vision_hidden=32, vision_depth=2),  # ~205K params: runs, learns little
    "learn": dict(text_hidden=256, text_layers=4, vision_hidden=128, vision_depth=4),  # ~4M params: learns on CPU
}


def _balance_modalities(model, processor) -> None:
    """Scale the vision merger's output layer so image features start at the norm of text embeddings.

    Randomly initialised, the merger's features are several times larger than the token embeddings. Every
    decoder layer's RMSNorm then divides their gradient by that norm, so a from-scratch model learns from text and
    all but ignores the images (measured: 16 images could not be memorised in 150 steps; 16 captions could).
    """
    import torch
    from PIL import Image

    images = [Image.new("RGB", (224, 160), (20 * i, 40, 90)) for i in range(4)]
    x = processor.image_processor(images=images, return_tensors="pt")
    with torch.no_grad():
        feats = model.model.get_image_features(x["pixel_values"], x["image_grid_thw"])
        feats = torch.cat(list(getattr(feats, "pooler_output", feats)))
        ratio = model.model.get_input_embeddings().weight.norm(dim=-1).mean() / feats.norm(dim=-1).mean()
        last = model.model.visual.merger.mlp[-1]
        last.weight.mul_(ratio)
        last.bias.mul_(ratio)


def build_tiny_vlm(out: str | Path, seed: int = 0, max_pixels: int = 224 * 160, size: str = "smoke",
                   **overrides) -> Path:
    """Build, randomly initialise and save the tiny model and its processor into ``out``; ``overrides`` change
    ``tiny_config`` arguments (e.g. ``rope_theta``) for experiments."""
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    torch.manual_seed(seed)
    processor = build_processor(max_pixels, overrides.pop("image_mean", None), overrides.pop("image_std", None))
    balance = overrides.pop("balance_modalities", size == "learn")
    model = Qwen2_5_VLForConditionalGeneration(tiny_config(processor.tokenizer, **SIZES[size] | overrides))
    if balance:
        _balance_modalities(model, processor)
    model.generation_config.eos_token_id = processor.tokenizer.convert_tokens_to_ids("<|im_end|>")
    model.generation_config.pad_token_id = processor.tokenizer.pad_token_id
    out = Path(out)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def load_tiny_vlm(path: str | Path):
    """Reload a saved tiny model and its processor (image-only), offline."""
    from transformers import Qwen2_5_VLForConditionalGeneration

    from ..model import load_processor

    return Qwen2_5_VLForConditionalGeneration.from_pretrained(path), load_processor(str(path))
