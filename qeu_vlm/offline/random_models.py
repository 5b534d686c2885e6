"""Random-weight models of every preset family, built offline.

Each preset's real architecture (``planner.ARCHS``) with random weights, the offline BPE tokenizer with the family's
special tokens and chat template, and the family's processor: Qwen2.5-VL, Qwen3-VL, Llama-3.2-Vision (Mllama) and
Pixtral (Llava + Pixtral vision). ``shrink`` builds the same families at toy dimensions, so every one runs on CPU.
Used by the GPU benchmark and the tests; nothing is downloaded.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

# The chat templates the other families' checkpoints ship, abridged to text and images (the offline tokenizer is
# ours, so the template is given here).
LLAMA_VISION_TEMPLATE = (
    "{{- bos_token }}{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' }}"
    "{%- if message['content'] is string %}{{- message['content'] }}{%- else %}{%- for c in message['content'] %}"
    "{%- if c['type'] == 'image' %}{{- '<|image|>' }}{%- elif c['type'] == 'text' %}{{- c['text'] }}{%- endif %}"
    "{%- endfor %}{%- endif %}{{- '<|eot_id|>' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}")
PIXTRAL_TEMPLATE = (
    "{{- bos_token }}{%- for message in messages %}{%- if message['role'] == 'user' %}{{- '[INST]' }}"
    "{%- if message['content'] is string %}{{- message['content'] }}{%- else %}{%- for c in message['content'] %}"
    "{%- if c['type'] == 'image' %}{{- '[IMG]' }}{%- elif c['type'] == 'text' %}{{- c['text'] }}{%- endif %}"
    "{%- endfor %}{%- endif %}{{- '[/INST]' }}{%- else %}"
    "{%- if message['content'] is string %}{{- message['content'] }}{%- else %}{{- message['content'][0]['text'] }}"
    "{%- endif %}{{- eos_token }}{%- endif %}{%- endfor %}")
TEMPLATES = {"mllama": (LLAMA_VISION_TEMPLATE, ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                                                "<|eot_id|>", "<|image|>", "<|python_tag|>"]),
             "pixtral": (PIXTRAL_TEMPLATE, ["<s>", "</s>", "[INST]", "[/INST]", "[IMG]", "[IMG_BREAK]", "[IMG_END]"])}
SHRUNK = dict(hidden=64, layers=2, intermediate=128, vocab=1024, kv_ratio=0.5, v_hidden=32, v_layers=2,
              v_intermediate=64, cross_layers=1)


def family_tokenizer(family: str):
    """The offline BPE tokenizer, with the family's special tokens and chat template where it is not Qwen's."""
    from .tiny_model import build_tokenizer

    tok = build_tokenizer()
    if family in TEMPLATES:
        template, special = TEMPLATES[family]
        tok.add_special_tokens({"additional_special_tokens": special})
        tok.chat_template, tok.bos_token = template, special[0]
        tok.eos_token = "</s>" if family == "pixtral" else "<|eot_id|>"
        tok.image_token = "[IMG]" if family == "pixtral" else "<|image|>"    # the processors read it from here
    return tok


def random_processor(family: str, max_pixels: int):
    """The family's processor around the offline tokenizer, built without downloads."""
    if family in ("qwen2.5-vl", "qwen3-vl"):
        from .tiny_model import build_processor

        proc = build_processor(max_pixels, patch_size=16 if family == "qwen3-vl" else 14)
        try:
            import torchvision  # noqa: F401
        except ImportError:         # no CPU build: the image-only processor, which load_model knows how to reload
            return proc
        # Where torchvision exists (a GPU machine), save the family's own processor class, so AutoProcessor, and
        # with it Unsloth's FastVisionModel, reload the folder.
        from transformers import Qwen2_5_VLProcessor, Qwen3VLProcessor
        from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor
        from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor

        cls, video = ((Qwen3VLProcessor, Qwen3VLVideoProcessor) if family == "qwen3-vl"
                      else (Qwen2_5_VLProcessor, Qwen2VLVideoProcessor))
        return cls(image_processor=proc.image_processor, tokenizer=proc.tokenizer, video_processor=video(),
                   chat_template=proc.chat_template)
    tok = family_tokenizer(family)
    if family == "mllama":
        from transformers import MllamaImageProcessorPil, MllamaProcessor

        return MllamaProcessor(MllamaImageProcessorPil(size={"height": 560, "width": 560}, max_image_tiles=4), tok,
                               chat_template=tok.chat_template)
    if family == "pixtral":
        from transformers import PixtralImageProcessorPil, PixtralProcessor   # the processor needs torchvision

        return PixtralProcessor(PixtralImageProcessorPil(size={"longest_edge": 1024}, patch_size=16), tok,
                                patch_size=16, chat_template=tok.chat_template)
    raise NotImplementedError(f"no processor for family {family}")


def random_config(preset: str, shrink: bool = False):
    """The model config of the preset's real architecture (``qeu_vlm.tools.planner.ARCHS``), its token ids from the
    offline tokenizer. ``shrink``: the same family at toy dimensions, so every family runs end to end on CPU."""
    from ..tools.planner import ARCHS
    from .tiny_model import mrope_sections

    a = ARCHS[preset]
    if shrink:
        a = replace(a, **SHRUNK)
    ids = family_tokenizer(a.family).convert_tokens_to_ids
    head_dim = 16 if shrink else 128
    heads = a.hidden // head_dim
    v_heads = 2 if shrink else 16
    text = dict(vocab_size=a.vocab, hidden_size=a.hidden, intermediate_size=a.intermediate, num_hidden_layers=a.layers,
                num_attention_heads=heads, num_key_value_heads=max(1, int(heads * a.kv_ratio)))
    if a.family in ("qwen2.5-vl", "qwen3-vl"):
        from transformers import Qwen2_5_VLConfig, Qwen3VLConfig

        qwen3 = a.family == "qwen3-vl"
        rope = {"rope_type": "default", "mrope_section": mrope_sections(head_dim), "rope_theta": 5e6 if qwen3 else 1e6}
        text |= dict(max_position_embeddings=32768, eos_token_id=ids("<|im_end|>"), pad_token_id=ids("<|endoftext|>"),
                     rope_parameters=rope | ({"mrope_interleaved": True} if qwen3 else {}))
        vision = dict(depth=a.v_layers, hidden_size=a.v_hidden, intermediate_size=a.v_intermediate, num_heads=v_heads,
                      out_hidden_size=a.hidden, spatial_merge_size=2, temporal_patch_size=2)
        common = dict(image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
                      vision_start_token_id=ids("<|vision_start|>"), vision_end_token_id=ids("<|vision_end|>"),
                      tie_word_embeddings=a.hidden <= 2048)            # the small Qwens tie, as the planner counts
        if qwen3:
            deep = list(range(a.v_layers // 3 - 1, a.v_layers, max(1, a.v_layers // 3)))[:3]
            return Qwen3VLConfig(text_config=text | dict(head_dim=head_dim, tie_word_embeddings=a.hidden <= 2048),
                                 vision_config=vision | dict(patch_size=16, deepstack_visual_indexes=deep), **common)
        full = list(range(a.v_layers // 4 - 1, a.v_layers, max(1, a.v_layers // 4)))
        return Qwen2_5_VLConfig(text_config=text | dict(tie_word_embeddings=a.hidden <= 2048),
                                vision_config=vision | dict(patch_size=14, window_size=112, fullatt_block_indexes=full),
                                **common)
    if a.family == "mllama":
        from transformers import MllamaConfig

        layers = list(range(0, a.v_layers, max(1, a.v_layers // 5)))[:5]
        step = max(1, a.layers // max(1, a.cross_layers))
        return MllamaConfig(
            text_config=text | dict(cross_attention_layers=list(range(step // 2, a.layers, step))[:a.cross_layers],
                                    bos_token_id=ids("<|begin_of_text|>"), eos_token_id=ids("<|eot_id|>"),
                                    pad_token_id=ids("<|endoftext|>"),
                                    rope_parameters={"rope_type": "default", "rope_theta": 5e5}),
            vision_config=dict(hidden_size=a.v_hidden, num_hidden_layers=a.v_layers, attention_heads=v_heads,
                               num_global_layers=max(1, a.v_layers // 4), intermediate_size=a.v_intermediate,
                               image_size=560, patch_size=14, max_num_tiles=4, intermediate_layers_indices=layers,
                               vision_output_dim=a.v_hidden * (len(layers) + 1)),
            image_token_index=ids("<|image|>"))
    if a.family == "pixtral":
        from transformers import LlavaConfig

        return LlavaConfig(
            vision_config=dict(model_type="pixtral", hidden_size=a.v_hidden, num_hidden_layers=a.v_layers,
                               intermediate_size=a.v_intermediate, num_attention_heads=v_heads,
                               head_dim=a.v_hidden // v_heads, image_size=1024, patch_size=16),
            text_config=dict(model_type="mistral", head_dim=head_dim, bos_token_id=ids("<s>"), eos_token_id=ids("</s>"),
                             pad_token_id=ids("<|endoftext|>"), sliding_window=None, **text),
            image_token_index=ids("[IMG]"), vision_feature_layer=-1, vision_feature_select_strategy="full",
            projector_hidden_act="gelu", image_seq_length=1)
    raise NotImplementedError(f"{preset}: no builder for family {a.family}")


def build_random(preset: str, out: Path, max_pixels: int, shrink: bool = False) -> Path:
    """Save a randomly initialised model of ``random_config`` and its ``random_processor`` into ``out``."""
    import torch
    from transformers import AutoModelForImageTextToText

    from ..tools.planner import ARCHS

    proc = random_processor(ARCHS[preset].family, max_pixels)    # first: it is what fails where torchvision is missing
    cfg = random_config(preset, shrink)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = AutoModelForImageTextToText.from_config(cfg).to(torch.float32 if shrink else torch.bfloat16)
    model.generation_config.pad_token_id = proc.tokenizer.pad_token_id
    model.save_pretrained(out)
    proc.save_pretrained(out)
    del model
    return out
