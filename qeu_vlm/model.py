"""Load the model and its processor, as Unsloth's notebooks do on a GPU, and with transformers + peft elsewhere.

Unsloth, in the order its notebooks make the calls::

    model, processor = FastVisionModel.from_pretrained(...)     # load_model
    model = FastVisionModel.get_peft_model(model, ...)         # load_model (LoRA)
    FastVisionModel.for_training(model)                         # for_training, then training.train
    FastVisionModel.for_inference(model)                        # for_inference, then generation.generate

The other backend makes the same steps with ``AutoModelForImageTextToText`` and ``peft``.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from .config import Config
from .families import ModelError, cap_images, family_of, lora_targets
from .presets import PRESETS


def model_source(cfg: Config) -> str:
    """What to load: a preset's Hub id, or the local model folder ``cfg.model`` names."""
    family_of(cfg.model)                         # an unknown name or a folder that is no VLM fails here, named
    return PRESETS[cfg.model].hub_id if cfg.model in PRESETS else cfg.model


def image_cap(cfg: Config) -> int | None:
    """Pixels per image: the run's ``max_pixels``, else its preset's."""
    preset = PRESETS.get(cfg.model)
    return cfg.max_pixels or (preset.max_pixels if preset else None)


def four_bit(cfg: Config) -> bool:
    if cfg.load_in_4bit is not None:
        return cfg.load_in_4bit
    preset = PRESETS.get(cfg.model)
    return bool(preset and preset.load_in_4bit)


def check_adapter(adapter) -> Path:
    """The adapter folder, after checking it holds trained weights and that its base model can be found."""
    adapter = Path(adapter)
    if not adapter.is_dir():
        raise ModelError(f"{adapter}: no adapter folder here; train first (notebook 03, or python -m qeu_vlm train)")
    config = adapter / "adapter_config.json"
    if config.exists():
        base = json.loads(config.read_text()).get("base_model_name_or_path")
        # A local base that moved (a run folder copied off Drive, say) would otherwise fail deep inside peft.
        if not base or (base.startswith(("/", ".")) and not Path(base).exists()):
            raise ModelError(f"{adapter}: its base model {base!r} cannot be found; put the base model back there, "
                             "or set base_model_name_or_path in adapter_config.json to where it is now")
    elif not (adapter / "config.json").exists():
        raise ModelError(f"{adapter}: neither a LoRA adapter (adapter_config.json) nor a full model (config.json)")
    return adapter


def load_model(cfg: Config, backend: str, adapter=None):
    """``(model, processor)`` for the backend, images capped at the run's ``max_pixels``; LoRA applied unless
    ``full_finetune``; ``adapter``: a trained adapter folder to load instead (base + LoRA, or a full model)."""
    path = model_source(cfg)
    adapter = check_adapter(adapter) if adapter else None
    if backend == "unsloth":
        model, processor = _load_unsloth(cfg, path, adapter)
    else:
        model, processor = _load_hf(cfg, path, adapter)
    return model, cap_images(processor, family_of(cfg.model), image_cap(cfg))


def _load_unsloth(cfg: Config, path: str, adapter: Path | None):
    from unsloth import FastVisionModel

    # Under accelerate launch / torchrun Unsloth puts each process on its own GPU (LOCAL_RANK) itself.
    model, processor = FastVisionModel.from_pretrained(
        str(adapter or path), load_in_4bit=four_bit(cfg), full_finetuning=cfg.full_finetune,
        use_gradient_checkpointing="unsloth" if cfg.gradient_checkpointing else False)
    if adapter is None and not cfg.full_finetune:
        model = FastVisionModel.get_peft_model(
            model, finetune_vision_layers=cfg.finetune_vision, finetune_language_layers=cfg.finetune_language,
            finetune_attention_modules=cfg.finetune_attention, finetune_mlp_modules=cfg.finetune_mlp,
            r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=0, bias="none", random_state=cfg.seed)
    return model, processor


def precision() -> dict:
    """fp16 on a T4 (no bf16), bf16 where supported, fp32 on CPU."""
    import torch

    if not torch.cuda.is_available():
        return {"fp16": False, "bf16": False}
    bf16 = torch.cuda.is_bf16_supported()
    return {"fp16": not bf16, "bf16": bf16}


def process_state():
    """Accelerate's view of this process (index, count, device): one process in a notebook, one of several under
    ``accelerate launch`` / ``torchrun``. Without a CUDA GPU the processes are CPU processes (gloo), as the
    trainer makes them (``SFTConfig(use_cpu=True)``)."""
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


def zero3() -> bool:
    """Launched with a DeepSpeed ZeRO-3 config (``accelerate launch`` says so in the environment)."""
    return os.environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE") == "3"


def placement(cfg: Config) -> dict:
    """``from_pretrained`` arguments that put the model on this process's GPU when there is one (GPU i for
    process i of a machine, as TRL places each rank), 4-bit where asked, with the settings Unsloth's 4-bit
    checkpoints use, so both backends compare at equal settings. Under ZeRO-3 DeepSpeed places the weights itself:
    no device map, and 4-bit weights stored in the compute dtype so they can be sharded."""
    import torch

    if not torch.cuda.is_available():
        return {"dtype": torch.float32}
    half = torch.bfloat16 if precision()["bf16"] else torch.float16
    out = {"dtype": half} if zero3() else {"device_map": {"": process_state().local_process_index}, "dtype": half}
    if four_bit(cfg):
        from transformers import BitsAndBytesConfig

        storage = {"bnb_4bit_quant_storage": half} if zero3() else {}
        out["quantization_config"] = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                        bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=half,
                                                        **storage)
    return out


def _load_hf(cfg: Config, path: str, adapter: Path | None):
    import torch
    from transformers import AutoModelForImageTextToText

    if adapter and cfg.full_finetune:
        path, adapter = str(adapter), None   # a fully trained model is saved whole in adapter/
    where = placement(cfg)
    model = AutoModelForImageTextToText.from_pretrained(path, **where)
    if "quantization_config" in where:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.gradient_checkpointing)
    processor = load_processor(path)
    if adapter:
        from peft import PeftModel

        return PeftModel.from_pretrained(model, str(adapter)), processor
    if cfg.full_finetune:
        return model, processor
    return with_lora(model, cfg), processor


def with_lora(model, cfg: Config):
    """peft's LoRA on the layers ``cfg`` names (``families.lora_targets``), as ``FastVisionModel.get_peft_model``
    adds it."""
    import torch
    from peft import LoraConfig, get_peft_model

    targets = lora_targets(model, vision=cfg.finetune_vision, language=cfg.finetune_language,
                           attention=cfg.finetune_attention, mlp=cfg.finetune_mlp)
    torch.manual_seed(cfg.seed)                # LoRA's A matrices start random, as Unsloth's random_state
    return get_peft_model(model, LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=0.0,
                                            target_modules=targets, task_type="CAUSAL_LM"))


def load_processor(path: str):
    """The processor saved beside a model. Without torchvision (a CPU install) transformers cannot build a Qwen-VL
    processor's video half, so a folder saved without one (the offline models) loads as images only."""
    import transformers
    from transformers import AutoImageProcessor, AutoProcessor, AutoTokenizer

    try:
        processor = AutoProcessor.from_pretrained(path)
    except (ImportError, ValueError, OSError, AttributeError):
        processor = None
    if hasattr(processor, "image_processor"):
        return processor
    tokenizer = AutoTokenizer.from_pretrained(path)
    try:
        images = AutoImageProcessor.from_pretrained(path)
    except ImportError:             # transformers 5.17 has no AutoImageProcessor without torchvision (the Colab lane)
        images = transformers.Qwen2VLImageProcessorPil.from_pretrained(path)
    return image_only_processor_class()(image_processor=images, tokenizer=tokenizer,
                                        chat_template=tokenizer.chat_template)


def image_only_processor_class():
    """Qwen2.5-VL's processor without the video slot (transformers derives slots from ``__init__``)."""
    from transformers import Qwen2_5_VLProcessor
    from transformers.processing_utils import ProcessorMixin

    class ImageOnlyQwen2_5_VLProcessor(Qwen2_5_VLProcessor):
        def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
            self.image_token, self.video_token = "<|image_pad|>", "<|video_pad|>"
            self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
            self.video_token_id = tokenizer.convert_tokens_to_ids(self.video_token)
            ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)

    return ImageOnlyQwen2_5_VLProcessor


def for_training(model, backend: str):
    """Unsloth's switch into training mode (gradient checkpointing on, generation flags off); ``train()`` else."""
    if backend == "unsloth":
        from unsloth import FastVisionModel

        return FastVisionModel.for_training(model)
    model.train()
    return model


def for_inference(model, backend: str):
    """Unsloth's switch into its fast generation mode; ``eval()`` elsewhere."""
    if backend == "unsloth":
        from unsloth import FastVisionModel

        return FastVisionModel.for_inference(model)
    model.eval()
    return model
