"""All settings of a run in one object, with a ``smoke()`` shrink for CI and quick checks.

>>> Config().smoke().max_steps
4
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path


@dataclass
class Config:
    run_dir: str = "runs/replay"
    # data
    data: str = "synthetic"            # "synthetic", "hub:OWNER/NAME", a saved dataset or a Drive folder
    test_data: str | None = None       # the test split's source when it is a separate Hub repo or folder
    pools: str | None = None           # Drive folder with passed_image/ (synthetic: the twin's)
    n_train: int = 1520
    n_test: int = 462
    seed: int = 0
    dst_fraction: float = 0.5          # twin: share of DST images (the learn profile uses DST only)
    image_size: tuple | None = None    # resize every image to (width, height) before the processor; None: as stored
    ablation: str | None = None        # "reference-as-test": the test image replaced by its reference (no defect info)
    one_shot_first: int = 500          # the original: the first 500 training records one-shot
    prompt_set: str = "default"
    n_eval: int = 64                   # held out of train for eval loss
    n_inspect: int = 100               # test records inspected per shot mode
    inspect_shots: tuple = ("zero", "one")
    # model
    model: str = "qwen2.5-vl-3b"       # a preset name, or a local model folder ("tiny" builds the offline one)
    tiny_size: str = "smoke"           # "tiny" model dimensions: "smoke" (205K params) or "learn" (~4M)
    tiny_overrides: dict | None = None # experiments on the tiny model's architecture, e.g. {"rope_theta": 100.0}
    backend: str = "auto"              # "auto", "unsloth", "hf"
    max_pixels: int | None = None      # None: the preset's cap
    max_length: int | None = None
    full_finetune: bool = False        # train all weights (the tiny model) instead of LoRA
    load_in_4bit: bool | None = None   # None: the preset's choice (4-bit for every preset); on a CUDA GPU only
    lora_r: int = 16
    lora_alpha: int = 16
    finetune_vision: bool = True
    finetune_language: bool = True
    finetune_attention: bool = True
    finetune_mlp: bool = True
    # training
    loss_on: str = "final"             # "final" answer only, all "assistant" turns, or "all" tokens
    max_steps: int = 20
    batch_size: int | None = None
    grad_accum: int | None = None
    learning_rate: float = 1.5e-4
    optim: str | None = None           # None: adamw_8bit on a CUDA GPU (as the original runs), adamw_torch on CPU
    lr_schedule: str = "linear"
    vision_learning_rate: float | None = None  # the vision tower's and merger's own peak rate; None: learning_rate
    balance_judgement: bool = False   # repeat the rarer judgement's training conversations until both are equal
    judgement_first_steps: int = 0    # curriculum: the first N steps learn the answer only up to its judgement line
    vision_warmup_steps: int = 0      # curriculum: the vision tower first learns the judgement alone, at learning_rate
    warmup_steps: int = 0
    time_budget_s: float | None = None # stop training after this many seconds (the learn profile's CPU budget)
    gradient_checkpointing: bool = True  # saves GPU memory; on CPU with a tiny model it only recomputes the forward
    eval_steps: int = 5
    save_steps: int = 5
    logging_steps: int = 1
    max_new_tokens: int = 64
    inspect_batch_size: int = 8
    smoke_mode: bool = False           # set by smoke(): nothing is pushed, reports say "smoke figures"

    def smoke(self) -> "Config":
        """A smaller real run: tiny offline model, a few steps, a small test slice."""
        return replace(self, smoke_mode=True, model="tiny", backend="hf", n_train=48, n_test=16, one_shot_first=12, n_eval=8,
                       n_inspect=8, max_steps=4, eval_steps=2, save_steps=2, batch_size=2, grad_accum=1,
                       max_pixels=224 * 160, max_length=1024, full_finetune=True, learning_rate=1e-3,
                       max_new_tokens=48, gradient_checkpointing=False)

    @classmethod
    def open(cls, run_dir, smoke: bool = False, **overrides) -> "Config":
        """The run's settings: ``run_dir/config.json`` if an earlier step wrote it, else the defaults; overrides
        that are not None replace fields; saved back, so every notebook and command of the run sees the same.
        ``QEU_VLM_SMOKE=1`` in the environment also asks for smoke mode.

        >>> import tempfile; d = tempfile.mkdtemp()
        >>> Config.open(d, smoke=True).model, Config.open(d).model
        ('tiny', 'tiny')
        """
        path = Path(run_dir) / "config.json"
        cfg = cls.load(path) if path.exists() else cls()
        cfg = replace(cfg, run_dir=str(run_dir), **{k: v for k, v in overrides.items() if v is not None})
        if smoke or os.environ.get("QEU_VLM_SMOKE") == "1":
            cfg = cfg.smoke()
        path.parent.mkdir(parents=True, exist_ok=True)
        cfg.save(path)
        return cfg

    def learn(self) -> "Config":
        """The CPU learning profile: a ~4M-parameter Qwen2.5-VL trained from scratch, all weights, on DST records
        at 224x154 (48 image tokens each), zero-shot, for 10 CPU-minutes; then 240 held-out records inspected.
        Its vision tower first learns the judgement alone for 500 steps (``vision_warmup``), inside the budget."""
        # DST images are dark: normalise with their own statistics, so the blob is not drowned by the background
        dst_stats = {"image_mean": [0.10, 0.12, 0.12], "image_std": [0.17, 0.19, 0.19]}
        return replace(self, model="tiny", tiny_size="learn", tiny_overrides=dst_stats, backend="hf",
                       full_finetune=True, dst_fraction=1.0, n_train=5000, n_test=240, n_inspect=240, n_eval=64,
                       one_shot_first=0, inspect_shots=("zero",), image_size=(224, 154), max_pixels=224 * 168,
                       max_length=512, prompt_set="short", batch_size=8, grad_accum=1, learning_rate=1e-3,
                       lr_schedule="cosine", warmup_steps=50, max_steps=1200, time_budget_s=600,
                       gradient_checkpointing=False, eval_steps=200, save_steps=400, logging_steps=20,
                       max_new_tokens=64, inspect_batch_size=16, vision_warmup_steps=500)

    def save(self, path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, path) -> "Config":
        d = json.loads(Path(path).read_text())
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})
