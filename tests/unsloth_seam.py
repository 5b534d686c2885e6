"""Run Unsloth's GPU path on a CPU, for tests only: the one seam, kept out of the package.

On a GPU, ``import unsloth`` patches TRL (``trl.SFTTrainer`` becomes Unsloth's generated ``UnslothSFTTrainer``).
On a CPU it picks a CPU backend; ``UNSLOTH_ALLOW_CPU=1`` forces its GPU-path import but then skips the TRL
patches, so ``import_unsloth_as_on_a_gpu`` applies them as the GPU import does. ``install`` makes
``qeu_vlm.backend`` see a GPU and load models through transformers + peft, which is what
``FastVisionModel.from_pretrained`` (GPU only) would hand over; everything after that is Unsloth's own code.
"""
import json
import os


def import_unsloth_as_on_a_gpu() -> None:
    os.environ["UNSLOTH_ALLOW_CPU"] = "1"
    import torch._functorch.config
    import unsloth  # noqa: F401

    # Unsloth compiles transformers' attention-mask builder; on CPU, inductor's code for it uses inductor's own
    # `_alloc_from_pool`, which trips torch's custom-op aliasing check. torch only warns about that (deprecated),
    # unless the environment variable CI is set, where it raises. The check concerns torch's code, not this one.
    torch._functorch.config.error_on_custom_op_aliasing = False

    del os.environ["UNSLOTH_ALLOW_CPU"]
    from unsloth.models.rl import PatchFastRL
    from unsloth.trainer import _patch_trl_trainer

    _patch_trl_trainer()          # what unsloth/_gpu_init.py runs at import
    PatchFastRL()                 # what unsloth/models/llama.py runs at import: UnslothSFTTrainer
    _load_like_fast_vision_model_on_cpu()


def _load_like_fast_vision_model_on_cpu() -> None:
    """``FastVisionModel.from_pretrained`` and ``get_peft_model`` read the GPU's properties first; code that calls
    them directly (notebook 03) gets what they would hand over, loaded through transformers + peft."""
    from pathlib import Path

    from unsloth import FastVisionModel

    from qeu_vlm import model
    from qeu_vlm.config import Config

    def from_pretrained(model_name, load_in_4bit=False, full_finetuning=False, **_):
        path = Path(model_name)
        adapter = path if (path / "adapter_config.json").exists() else None
        base = json.loads((path / "adapter_config.json").read_text())["base_model_name_or_path"] if adapter else path
        # no adapter: the plain model (LoRA comes from get_peft_model); an adapter: the base with it, as peft loads it
        return model._load_hf(Config(full_finetune=adapter is None), str(base), adapter)

    def get_peft_model(m, finetune_vision_layers=True, finetune_language_layers=True,
                       finetune_attention_modules=True, finetune_mlp_modules=True, r=16, lora_alpha=16,
                       random_state=0, **_):
        return model.with_lora(m, Config(finetune_vision=finetune_vision_layers,
                                         finetune_language=finetune_language_layers,
                                         finetune_attention=finetune_attention_modules,
                                         finetune_mlp=finetune_mlp_modules, lora_r=r, lora_alpha=lora_alpha,
                                         seed=random_state))

    FastVisionModel.from_pretrained = staticmethod(from_pretrained)
    FastVisionModel.get_peft_model = staticmethod(get_peft_model)


def load_like_fast_vision_model(cfg, path, adapter):
    from qeu_vlm import model

    return model._load_hf(cfg, path, adapter)


def install() -> None:
    from qeu_vlm import backend, model

    backend._gpu_visible = lambda: True
    backend._import_unsloth = import_unsloth_as_on_a_gpu
    model._load_unsloth = load_like_fast_vision_model
