"""The main job: a VLM trained from scratch on this machine's CPU learns to inspect, shown before and after.

``bash scripts/main_job.sh`` (= ``python -m qeu_vlm main-job --out runs/main_job``; ``--seed``, ``--look``).
DST records of the twin at 224x154 (48 image tokens each), zero-shot, short prompts, all weights of a Qwen2.5-VL-style
model of about 4M parameters trained: a vision warm-up that ends once its head reads the judgement off the test image,
then 200 fine-tuning steps, the first 60 supervised up to the judgement only, on a training set whose passed parts
are repeated until both judgements are equally common. ``--smoke``: the same steps, small (``Config.smoke()`` and
``IN_SMOKE_MODE``).
"""
from dataclasses import dataclass

CONFIG = dict(model="tiny", backend="hf", full_finetune=True, dst_fraction=1.0, n_train=1500, n_test=240,
              n_inspect=120, n_eval=32, one_shot_first=0, inspect_shots=("zero",), image_size=(224, 154),
              max_pixels=224 * 168, max_length=512, prompt_set="short", batch_size=8, grad_accum=1, learning_rate=1e-3,
              lr_schedule="cosine", warmup_steps=20, max_steps=200, gradient_checkpointing=False, eval_steps=50,
              save_steps=10**6, logging_steps=10, max_new_tokens=64, inspect_batch_size=16)


@dataclass
class MainJob:
    """What the main job adds to a plain fine-tune, for a model that starts from random weights."""

    model_size: str = "learn"          # offline.tiny_model.SIZES: "learn", about 4M parameters
    warmup_until: float = 0.98         # the vision warm-up ends once its head's accuracy over 50 steps reaches this
    warmup_max_steps: int = 800        # ... or after this many steps
    judgement_first_steps: int = 60    # the first fine-tuning steps supervise the answer only up to its judgement
    balance_judgement: bool = True     # passed parts repeated until both judgements are equally common


# The recipe's own fields in smoke mode, beside Config.smoke()'s: the smoke model, a few warm-up steps.
IN_SMOKE_MODE = dict(model_size="smoke", warmup_max_steps=3, judgement_first_steps=1)
