"""The learn profile of the research: the ~4M-parameter offline pretrained Qwen2.5-VL fine-tuned on CPU, with its
ablation.

``python -m qeu_vlm learn`` (``--steps 750``, ``--seed``; ``qeu_vlm.research.learn``). Rendered-twin DST records at
224x154 (48 image tokens each), zero-shot, short prompts, all weights trained; 240 held-out records inspected.
``--start scratch`` trains the same model from random weights instead.
"""
from dataclasses import dataclass, field

CONFIG = dict(model="tiny", backend="hf", full_finetune=True, dst_fraction=1.0, twin_look="rendered", n_train=5000,
              n_test=240, n_inspect=240, n_eval=64, one_shot_first=0, inspect_shots=("zero",), image_size=(224, 154),
              max_pixels=224 * 168, max_length=512, prompt_set="short", batch_size=8, grad_accum=1, learning_rate=1e-3,
              lr_schedule="cosine", warmup_steps=50, max_steps=750, gradient_checkpointing=False, eval_steps=200,
              save_steps=400, logging_steps=20, max_new_tokens=64, inspect_batch_size=16)


@dataclass
class LearnSettings:
    """The settings only the learn profile and its probes use, beside the run's ``Config``."""

    start: str = "pretrained"           # "pretrained" (offline.pretrain, shipped) or "scratch" (random weights)
    tiny_size: str = "learn"            # from scratch: offline.tiny_model.SIZES, "learn" (~4M params) or "smoke"
    tiny_overrides: dict = field(default_factory=dict)   # from scratch: tiny_config arguments, e.g. {"rope_theta": 1e2}
    ablation: str | None = None         # "reference-as-test": the test image replaced by its reference
    balance_judgement: bool = True      # repeat the rarer judgement's training conversations until both are equal
    vision_warmup_steps: int = 150      # each image token first learns which pin's defect it holds (vision_warmup)
    vision_learning_rate: float | None = None  # the tower's and merger's own peak rate; None: the run's
    time_budget_s: float | None = None  # a clock cap on training (seconds); None: the steps decide
    baseline_fit_on: int | None = 200   # training records the classic baseline is fitted on; None: all
