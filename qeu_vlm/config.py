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
    one_shot_first: int = 500          # the original: the first 500 training records one-shot
    prompt_set: str = "default"
    n_eval: int = 64                   # held out of train for eval loss
    n_inspect: int = 100               # test records inspected per shot mode
    inspect_shots: tuple = ("zero", "one")
    # model
    model: str = "qwen2.5-vl-3b"       # a preset name, or a local model folder ("tiny" builds the offline one)
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
    warmup_steps: int = 0
    gradient_checkpointing: bool = True  # saves GPU memory; on CPU with a tiny model it only recomputes the forward
    eval_steps: int = 5
    save_steps: int = 5
    logging_steps: int = 1
    max_new_tokens: int = 64
    inspect_batch_size: int = 8
    smoke_mode: bool = False           # set by smoke(): nothing is pushed, reports say "smoke figures"

    def smoke(self) -> "Config":
        """A smaller real run: tiny offline model, a few steps, a small test slice."""
        return replace(self, smoke_mode=True, model="tiny", backend="hf", n_train=48, n_test=16, one_shot_first=12,
                       n_eval=8, n_inspect=8, max_steps=4, eval_steps=2, save_steps=2, batch_size=2, grad_accum=1,
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

    def save(self, path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, path) -> "Config":
        d = json.loads(Path(path).read_text())
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})
