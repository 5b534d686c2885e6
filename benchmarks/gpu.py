"""GPU benchmark: step time, tokens/s and peak VRAM for zero- and one-shot batches, per preset and backend.

    python -m benchmarks.gpu --presets qwen2.5-vl-3b,qwen3-vl-4b --backends unsloth,hf [--t4] [--steps 6]
    python -m benchmarks.gpu --tiny --backends hf --steps 2       # the CPU path: the tiny model, end to end

Nothing is downloaded: each preset's model is built from its real architecture (``qeu_vlm.planner.ARCHS``) with
random weights and saved locally first, with the offline image-only processor. Both backends then train it
through ``qeu_vlm.train.train`` on the same synthetic one-shot/zero-shot batches, side by side in one run, and the
planner's estimate is printed beside each measured peak. ``--t4`` emulates a free Colab T4: the process is capped
at 15 GiB and bf16 is off (fp16).

Every preset's family is built: Qwen2.5-VL, Qwen3-VL, Llama-3.2-Vision (Mllama) and Pixtral (Llava + Pixtral
vision), each with the published parameter count to within 5% (checked on the meta device in the tests), the
offline BPE tokenizer and the family's chat template. Pixtral's processor needs torchvision, so on a CPU machine
without it Pixtral is reported as not built. ``--shrink`` builds the same families at toy dimensions, which runs
every builder, collator and loss mask end to end on CPU:

    python -m benchmarks.gpu --presets qwen3-vl-2b,llama-3.2-11b-vision,pixtral-12b --shrink --backends hf --steps 1
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from dataclasses import replace
from datetime import date
from pathlib import Path

GIB = 2**30


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
    from qeu_vlm.tiny_model import build_tokenizer

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
        from qeu_vlm.tiny_model import build_processor

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
    """The model config of the preset's real architecture (``qeu_vlm.planner.ARCHS``), its token ids from the
    offline tokenizer. ``shrink``: the same family at toy dimensions, so every family runs end to end on CPU."""
    from qeu_vlm.planner import ARCHS
    from qeu_vlm.tiny_model import mrope_sections

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
        text |= dict(max_position_embeddings=32768, eos_token_id=ids("<|im_end|>"), pad_token_id=ids("<|endoftext|>"),
                     rope_parameters={"rope_type": "default", "mrope_section": mrope_sections(head_dim),
                                      "rope_theta": 5e6 if qwen3 else 1e6} | ({"mrope_interleaved": True} if qwen3 else {}))
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
        return Qwen2_5_VLConfig(text_config=text | dict(tie_word_embeddings=a.hidden <= 2048), vision_config=vision | dict(
            patch_size=14, window_size=112, fullatt_block_indexes=full), **common)
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

    from qeu_vlm.planner import ARCHS

    proc = random_processor(ARCHS[preset].family, max_pixels)    # first: it is what fails where torchvision is missing
    cfg = random_config(preset, shrink)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = AutoModelForImageTextToText.from_config(cfg).to(torch.float32 if shrink else torch.bfloat16)
    model.generation_config.pad_token_id = proc.tokenizer.pad_token_id
    model.save_pretrained(out)
    proc.save_pretrained(out)
    del model
    return out


def measure(cfg, convs, run: Path, preset: str | None = None) -> dict:
    import torch

    from qeu_vlm.planner import Setting, estimate
    from qeu_vlm.train import train

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    trainer = train(cfg, convs, [], run, resume=False)
    stats = json.loads((run / "train_stats.json").read_text())
    peak = torch.cuda.max_memory_reserved() / GIB if torch.cuda.is_available() else None
    out = {"steps": stats["steps"], "s/step": round(stats["runtime_s"] / max(1, stats["steps"]), 3),
           "samples/s": stats["samples_per_s"], "tokens/s": round(stats["samples_per_s"] * stats["tokens_per_sample"]),
           "peak GiB": round(peak, 2) if peak else None}
    if preset:
        shot = "one" if cfg.one_shot_first else "zero"
        out["planner GiB"] = estimate(Setting(preset, shot, cfg.max_pixels, cfg.batch_size, cfg.grad_accum)).peak_gib
    del trainer
    return out


def main(argv=None):
    import torch

    from qeu_vlm.config import Config
    from qeu_vlm.pipeline import prepare
    from qeu_vlm.presets import get_preset
    from qeu_vlm.train import TrainingError

    a = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    a.add_argument("--presets", default="qwen2.5-vl-3b")
    a.add_argument("--backends", default="unsloth,hf")
    a.add_argument("--steps", type=int, default=6)
    a.add_argument("--t4", action="store_true", help="cap the process at 15 GiB and use fp16 (no bf16)")
    a.add_argument("--tiny", action="store_true", help="the tiny offline model instead of the presets (CPU check)")
    a.add_argument("--shrink", action="store_true",
                   help="each preset's family at toy dimensions: a CPU check of every builder and its collator")
    a.add_argument("--out", help="folder for the random models and runs (default: a temporary one)")
    args = a.parse_args(argv)

    if args.t4 and torch.cuda.is_available():
        torch.cuda.set_per_process_memory_fraction(min(1.0, 15 * GIB / torch.cuda.get_device_properties(0).total_memory))
        torch.cuda.is_bf16_supported = lambda *a, **k: False        # what a T4 reports: fp16 everywhere
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores)"
    root = Path(args.out or tempfile.mkdtemp(prefix="qeu_gpu_bench_"))
    rows = []
    for preset in (["tiny"] if args.tiny else args.presets.split(",")):
        for shot in ("zero", "one"):
            for backend in args.backends.split(","):
                name = f"{preset}-{shot}-{backend}"
                run = root / name
                run.mkdir(parents=True, exist_ok=True)
                base = Config(run_dir=str(run), n_train=16, n_test=4, n_inspect=2, n_eval=0, eval_steps=0,
                              save_steps=10_000, max_steps=args.steps, backend=backend,
                              one_shot_first=16 if shot == "one" else 0, logging_steps=1)
                if preset == "tiny":
                    cfg = replace(base.smoke(), n_train=16, max_steps=args.steps, eval_steps=0, n_eval=0,
                                  backend=backend, one_shot_first=base.one_shot_first, save_steps=10_000)
                else:
                    p = get_preset(preset)
                    folder = root / f"model-{preset}"
                    try:
                        if not (folder / "config.json").exists():
                            build_random(preset, folder, p.max_pixels, shrink=args.shrink)
                    except (NotImplementedError, ImportError) as e:      # e.g. Pixtral's processor needs torchvision
                        rows.append((name, {"error": f"not built: {str(e).strip().splitlines()[0]}"}))
                        continue
                    cfg = replace(base, model=str(folder), max_pixels=p.max_pixels, max_length=p.max_length,
                                  batch_size=p.batch_size, grad_accum=p.grad_accum, load_in_4bit=p.load_in_4bit)
                try:
                    prepared = prepare(cfg)
                    rows.append((name, measure(cfg, prepared.train_convs, run, None if preset == "tiny" or args.shrink else preset)))
                except (TrainingError, RuntimeError, ImportError) as e:   # e.g. CUDA OOM under --t4, no unsloth
                    rows.append((name, {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"}))
    print(f"device: {device}; date {date.today()}; torch {torch.__version__}; {platform.python_version()}"
          + ("; T4 emulation: 15 GiB cap, fp16" if args.t4 else ""))
    keys = ["steps", "s/step", "samples/s", "tokens/s", "peak GiB", "planner GiB"]
    print("| run | " + " | ".join(keys) + " | error |")
    print("|---|" + "---|" * (len(keys) + 1))
    for name, r in rows:
        print(f"| {name} | " + " | ".join(str(r.get(k, "")) for k in keys) + f" | {r.get('error', '')} |")
    for preset in {n.rsplit("-", 2)[0] for n, _ in rows}:
        for shot in ("zero", "one"):
            u = dict(rows).get(f"{preset}-{shot}-unsloth", {})
            h = dict(rows).get(f"{preset}-{shot}-hf", {})
            if u.get("samples/s") and h.get("samples/s"):
                print(f"{preset} {shot}-shot: unsloth / hf throughput = {u['samples/s'] / h['samples/s']:.2f}x "
                      f"(target >= 1.8x)")
    return rows


if __name__ == "__main__":
    main()
