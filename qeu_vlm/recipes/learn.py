"""The learn profile of the research: a ~4M-parameter Qwen2.5-VL trained from scratch on CPU, with its ablation.

``python -m qeu_vlm learn`` (``--minutes 30``, ``--look``, ``--seed``; ``qeu_vlm.research.learn``). Rendered-twin DST
records at 224x154 (48 image tokens each), zero-shot, short prompts, all weights trained; 240 held-out records
inspected. 750 fine-tuning steps are about 10 minutes of a 2-core CPU (``research.learn.profile_steps(10)``).
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

    tiny_size: str = "learn"            # offline.tiny_model.SIZES: "learn" (~4M params) or "smoke" (205K)
    tiny_overrides: dict = field(default_factory=dict)   # tiny_config arguments, e.g. {"rope_theta": 100.0}
    ablation: str | None = None         # "reference-as-test": the test image replaced by its reference
    balance_judgement: bool = False     # repeat the rarer judgement's training conversations until both are equal
    judgement_first_steps: int = 0      # curriculum: the first N steps learn the answer only up to its judgement
    vision_warmup_steps: int = 800      # the tower first learns the judgement alone (qeu_vlm.tools.vision_warmup),
    vision_warmup_until: float | None = 0.98   # ... until its head's accuracy over 50 steps reaches this (or the cap)
    vision_learning_rate: float | None = None  # the tower's and merger's own peak rate; None: the run's
    time_budget_s: float | None = None  # a clock cap on training (seconds); None: the steps decide
