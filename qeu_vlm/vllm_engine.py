"""Batch inspection through vLLM: ``generation.predict``'s conversations, prompts and rows, from the engine built
for serving many (continuous batching, LoRA adapters served without merging).

The base model runs alone or with a trained adapter as a LoRA (``LoRARequest``), its vision tower's LoRA included
(``enable_tower_connector_lora``: without it vLLM drops ``visual.*`` LoRA weights, and this project trains the tower
by default). What would fail inside the engine is named first: vLLM missing, an adapter of another base or one vLLM
cannot serve, a conversation with more images than ``limit_mm_per_prompt``.
"""
from __future__ import annotations

import json
import os
import sys
import time
import typing
from importlib.util import find_spec
from pathlib import Path
from types import SimpleNamespace

from .conversation import images_of
from .families import VISION_PARTS, cap_images, family_of
from .generation import chat_prompts, prediction_row, stop_ids, write_jsonl
from .model import check_adapter, image_cap, load_processor, model_source, precision

INSTALL = ("on a CPU: bash scripts/install_vllm_stack.sh (vLLM's CPU build, in .venv-vllm); "
           "on a CUDA GPU: pip install vllm")
QWEN = ("qwen2.5-vl", "qwen3-vl")


class VllmError(ValueError):
    """vLLM cannot do what was asked; the message says why, before any work."""


def require_vllm() -> None:
    if find_spec("vllm") is None:
        raise VllmError(f"vLLM is not installed in this environment ({sys.prefix}); install it {INSTALL}")


def check_images(convs: list[dict], limit: int) -> None:
    counts = [len(images_of(c)) for c in convs]
    for i, n in enumerate(counts):
        if n > limit:
            raise VllmError(f"conversation {i} ({convs[i].get('shot', '?')}-shot) holds {n} images, above "
                            f"limit_mm_per_prompt={limit}; give at least {max(counts)}")


def _same(a, b) -> bool:
    return str(a) == str(b) or (Path(a).is_dir() and Path(b).is_dir() and Path(a).resolve() == Path(b).resolve())


def served(base, adapter=None) -> tuple[str, Path | None]:
    """(the model vLLM loads, the LoRA adapter served on it or None); a fully fine-tuned model is served whole."""
    adapter = check_adapter(adapter) if adapter else None
    if adapter is None or not (adapter / "adapter_config.json").exists():
        return str(adapter or base), None
    built = json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"]
    if not _same(built, base):
        raise VllmError(f"{adapter}: an adapter built for the base {built!r}, not for {str(base)!r}, the base "
                        "served here; serve it on its own base, or train one for this base")
    return str(base), adapter


def _unservable(adapter: Path, base: str) -> dict[str, str]:
    """LoRA'd module -> why vLLM cannot serve it: it serves LoRA on linear layers (the tower's where its class does)."""
    from safetensors import safe_open
    from transformers import AutoConfig
    from vllm.model_executor.models import ModelRegistry

    arch = AutoConfig.from_pretrained(base).architectures[0]
    if arch not in ModelRegistry.models:
        raise VllmError(f"{base}: vLLM has no model class for {arch}")
    tower = getattr(ModelRegistry.models[arch].load_model_cls(), "supports_tower_connector_lora", False)
    out = {}
    with safe_open(str(adapter / "adapter_model.safetensors"), "pt") as f:
        for key in f.keys():
            module = key.removeprefix("base_model.model.").split(".lora_")[0]
            if "lora_embedding_" in key:
                out[module] = "an embedding"
            elif module.split(".")[-1] == "lm_head":
                out[module] = "the output head"
            elif ".lora_A." in key and len(f.get_slice(key).get_shape()) != 2:
                out[module] = "a convolution"
            elif not tower and any(p in VISION_PARTS for p in module.split(".")):
                out[module] = f"the vision tower, which vLLM's {arch} serves no LoRA on"
    return out


def lora_rank(adapter: Path, base: str) -> int:
    """The ``max_lora_rank`` to serve ``adapter`` with (the smallest vLLM offers at or above its ranks), after
    checking vLLM can: its rank, the PEFT features vLLM lacks (vLLM's own ``PEFTHelper`` check: DoRA, LoRA bias,
    saved full modules) and the layers it wraps."""
    from vllm.config.lora import LoRAConfig, MaxLoRARanks
    from vllm.lora.peft_helper import PEFTHelper

    helper = PEFTHelper.from_local_dir(str(adapter), None)
    r, offered = max([helper.r, *helper.rank_pattern.values()]), typing.get_args(MaxLoRARanks)
    if r > max(offered):
        raise VllmError(f"{adapter}: LoRA rank {r} is above {max(offered)}, the largest vLLM serves; "
                        f"train with lora_r <= {max(offered)}")
    rank = min(o for o in offered if o >= r)
    try:
        helper.validate_legal(LoRAConfig(max_lora_rank=rank))
    except ValueError as e:
        raise VllmError(f"{adapter}: vLLM cannot serve this adapter: {e}") from None
    bad = _unservable(adapter, base)
    if bad:
        raise VllmError(f"{adapter}: vLLM cannot serve LoRA on {len(bad)} of its layers: "
                        + "; ".join(f"{m} ({why})" for m, why in list(bad.items())[:4])
                        + "; train without them (finetune flags), or merge the adapter and serve the merged model")
    return rank


def checked(base, convs: list[dict], adapter=None, limit_mm_per_prompt: int | None = None):
    """(model to load, LoRA adapter or None, images per prompt, max_lora_rank or None), after every check; the
    limit defaults to the most images any conversation holds."""
    require_vllm()
    limit = limit_mm_per_prompt or max((len(images_of(c)) for c in convs), default=1)
    check_images(convs, limit)
    model, lora = served(base, adapter)
    return model, lora, limit, lora_rank(lora, model) if lora else None


class VllmEngine:
    """One vLLM engine for a base model, alone or with LoRA adapters of it (``max_lora_rank`` set), built once for
    many batches; ``llm_kw`` go to ``vllm.LLM``."""

    def __init__(self, base, family: str | None = None, max_pixels: int | None = None, limit_mm_per_prompt: int = 3,
                 max_lora_rank: int | None = None, **llm_kw):
        require_vllm()
        # The engine core in this process: a spawned one re-imports __main__, unguarded in `python -m qeu_vlm`.
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        import torch
        from transformers import GenerationConfig
        from vllm import LLM

        self.base, self.limit, self.rank, self._loras = str(base), limit_mm_per_prompt, max_lora_rank, {}
        family = family or family_of(self.base)
        self.processor = cap_images(load_processor(self.base), family, max_pixels)
        folder = Path(self.base)
        if family in QWEN and folder.is_dir() and not (folder / "video_preprocessor_config.json").exists():
            # vLLM's Qwen processor loads a video processor too; the offline tiny model is saved without one.
            from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor
            from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor

            (Qwen3VLVideoProcessor if family == "qwen3-vl" else Qwen2VLVideoProcessor)().save_pretrained(folder)
        half = precision()                 # the transformers path's dtype: fp32 on a CPU, bf16 or fp16 on a GPU
        kw = dict(limit_mm_per_prompt={"image": limit_mm_per_prompt, "video": 0},
                  dtype="bfloat16" if half["bf16"] else "float16" if half["fp16"] else "float32")
        if family in QWEN:                 # and its image cap
            kw["mm_processor_kwargs"] = {"size": dict(self.processor.image_processor.size)}
        if max_lora_rank:
            kw |= dict(enable_lora=True, max_lora_rank=max_lora_rank, enable_tower_connector_lora=True)
        if not torch.cuda.is_available():
            kw["kv_cache_memory_bytes"] = 2**30     # else vLLM's CPU backend sizes its cache by the machine's memory
        self.llm = LLM(self.base, **(kw | llm_kw))
        self.stop = stop_ids(SimpleNamespace(generation_config=GenerationConfig.from_pretrained(self.base)),
                             self.processor.tokenizer)

    def _request(self, adapter):
        from vllm.lora.request import LoRARequest

        _, lora = served(self.base, adapter)
        rank = lora_rank(lora, self.base) if lora else None
        if rank is None or rank > (self.rank or 0):
            raise VllmError(f"{adapter}: not a LoRA adapter this engine can serve (rank {rank}, the engine's "
                            f"max_lora_rank {self.rank}); build an engine for it")
        key = str(lora.resolve())
        self._loras.setdefault(key, LoRARequest(f"adapter{len(self._loras) + 1}", len(self._loras) + 1, key))
        return self._loras[key]

    def generate(self, convs: list[dict], adapter=None, max_new_tokens: int = 64) -> list[tuple[str, float]]:
        """Greedy answers with seconds per record, as ``generation.generate`` returns them."""
        from vllm import SamplingParams

        check_images(convs, self.limit)
        request = self._request(adapter) if adapter else None
        texts, images = chat_prompts(self.processor, convs)
        prompts = [{"prompt": t, "multi_modal_data": {"image": im}} if im else {"prompt": t}
                   for t, im in zip(texts, images)]
        params = SamplingParams(temperature=0.0, max_tokens=max_new_tokens, stop_token_ids=self.stop)
        t = time.perf_counter()
        outs = self.llm.generate(prompts, params, lora_request=request, use_tqdm=False)
        dt = (time.perf_counter() - t) / max(len(convs), 1)
        decode = self.processor.tokenizer.decode   # as generation.generate decodes: texts compare token for token
        return [(decode(o.outputs[0].token_ids, skip_special_tokens=True), dt) for o in outs]


def engine_for(cfg, convs: list[dict], adapter=None) -> tuple[VllmEngine, Path | None]:
    """(the engine for ``cfg``'s model and image cap, the LoRA adapter to ask it for), checked against ``convs``."""
    model, lora, limit, rank = checked(model_source(cfg), convs, adapter)
    return VllmEngine(model, family_of(cfg.model), image_cap(cfg), limit, rank), lora


def predict(base, records, convs: list[dict], truths, path, adapter=None, max_new_tokens: int = 64,
            limit_mm_per_prompt: int | None = None, engine: VllmEngine | None = None, **engine_kw) -> list[dict]:
    """``generation.predict`` through vLLM: the same JSONL rows. Every check comes before an engine is built;
    ``engine``: one built earlier for ``base``, reused."""
    model, lora, limit, rank = checked(base, convs, adapter, limit_mm_per_prompt)
    if engine is not None and not _same(engine.base, model):
        raise VllmError(f"the engine given serves {engine.base}, not {model}")
    engine = engine or VllmEngine(model, limit_mm_per_prompt=limit, max_lora_rank=rank, **engine_kw)
    answers = engine.generate(convs, lora, max_new_tokens)
    rows = [prediction_row(text, truth, conv["shot"], rec["type"], dt)
            for rec, conv, truth, (text, dt) in zip(records, convs, truths, answers)]
    return write_jsonl(rows, path)
