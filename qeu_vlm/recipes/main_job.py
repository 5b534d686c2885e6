"""The main job: the offline pretrained VLM fine-tuned on this machine's CPU learns to inspect, shown before and after.

``bash scripts/main_job.sh`` (= ``python -m qeu_vlm main-job --out runs/main_job``; ``--seed``, ``--threads``).
DST records of the rendered twin at 224x154 (48 image tokens each), zero-shot, short prompts. The model is the
package's pretrained one (``offline/pretrain.py``: it knows where a red star is, never saw a bent pin): a vision
warm-up of fixed length on the training records' defect boxes (the tower's blocks and merger), then 280 fine-tuning
steps of the language model and the merger on a training set whose passed parts are repeated until both judgements
are equally common. The patch embedding is never trained (its weight gradient cost a tenth of each step) and the
tower's blocks are frozen after the warm-up (a third of each step; on seed 1 it also scored higher: judgement 0.967
against 0.958, position 0.883 against 0.783; docs/experiment_log.md, 2026-12-04). ``--smoke``: the same steps,
small (``Config.smoke()`` and ``IN_SMOKE_MODE``).
"""
from dataclasses import dataclass

CONFIG = dict(backend="hf", full_finetune=True, dst_fraction=1.0, twin_look="rendered", n_train=1500, n_test=300,
              n_inspect=120, n_eval=32, one_shot_first=0, inspect_shots=("zero",), image_size=(224, 154),
              max_pixels=224 * 168, max_length=512, prompt_set="short", batch_size=8, grad_accum=1,
              learning_rate=1e-3, lr_schedule="cosine", warmup_steps=20, max_steps=280,
              gradient_checkpointing=False, eval_steps=100, save_steps=10**6, logging_steps=10, max_new_tokens=64,
              inspect_batch_size=16)


@dataclass
class MainJob:
    """What the main job adds to a plain fine-tune."""

    warmup_steps: int = 150            # the vision warm-up: each image token learns which pin's defect it holds
    warmup_batch_size: int = 16        # ... at the fine-tuning's learning rate
    balance_judgement: bool = True     # passed parts repeated until both judgements are equally common
    baseline_fit_on: int = 100         # training records the classic baseline is fitted on (seconds, not minutes)
    vision_frozen: tuple = ("patch_embed",)          # tower parts never trained (their weight gradient is costly)
    vision_frozen_in_fine_tuning: tuple = ("blocks",)    # ... nor after the warm-up: fine-tuning trains the merger


# The recipe's own fields in smoke mode, beside Config.smoke()'s (whose model the main job does not take: it always
# starts from the pretrained model).
IN_SMOKE_MODE = dict(warmup_steps=3, warmup_batch_size=4, baseline_fit_on=16)
