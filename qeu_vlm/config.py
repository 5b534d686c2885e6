"""All settings of a run in one object, with a ``smoke()`` shrink for CI and quick checks (``recipes/smoke.py``).

>>> Config().smoke().max_steps
4

A run folder is either a smoke run or a real one, never both: ``Config.open`` decides smoke mode from the call
(and ``QEU_VLM_SMOKE``) every time, and refuses a folder whose saved settings say otherwise, so a smoke run's
tiny model and four steps can never leak into a real run that reuses its folder.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from .recipes.smoke import SMOKE


class RunFolderError(FileNotFoundError):
    """The run folder lacks what a step needs, or holds a run with other settings; the message says which
    notebook or setting to change. A FileNotFoundError, so code that waits for a missing file catches it too."""


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
    twin_look: str = "rendered"        # twin: "rendered" (ray-cast, like the real images); "schematic": fast, for tests
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
    real_model: str | None = None      # smoke mode: the preset the real run would train (03 shows its VRAM plan)

    def smoke(self) -> "Config":
        """The same steps, small and offline (``recipes/smoke.py``): tiny offline model, a few steps, a small test
        slice; a zero-shot run stays zero-shot.

        >>> c = Config(model="qwen2-vl-7b").smoke(); c.model, c.real_model, c.one_shot_first
        ('tiny', 'qwen2-vl-7b', 12)
        >>> Config(one_shot_first=0).smoke().one_shot_first
        0
        """
        real = self.real_model or (self.model if self.model != "tiny" else None)
        shrink = SMOKE | {"one_shot_first": min(self.one_shot_first, SMOKE["one_shot_first"])}
        return replace(self, smoke_mode=True, real_model=real, **shrink)

    @classmethod
    def open(cls, run_dir, smoke: bool = False, first: str | None = None, **overrides) -> "Config":
        """The run's settings: ``run_dir/config.json`` if an earlier step wrote it, else the defaults with the
        overrides that are not None; saved, so every notebook and command of the run sees the same.

        Smoke mode (``smoke``, or ``QEU_VLM_SMOKE=1`` in the environment) is decided by this call, never inherited:
        opening a smoke run's folder for a real run, or the reverse, is an error, and so is an override that
        contradicts the saved settings. ``first``: the notebook that starts a run; when given and the folder holds
        no run yet, the error names it instead of starting a run with default settings.

        >>> import tempfile; d = tempfile.mkdtemp()
        >>> Config.open(d, smoke=True).model, Config.open(d, smoke=True).real_model
        ('tiny', 'qwen2.5-vl-3b')
        >>> Config.open(d)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        qeu_vlm.config.RunFolderError: ... holds a smoke run, and this is a real run (SMOKE = False)...
        """
        smoke = bool(smoke) or os.environ.get("QEU_VLM_SMOKE") == "1"
        path = Path(run_dir) / "config.json"
        asked = {k: v for k, v in overrides.items() if v is not None}
        if not path.exists():
            if first:
                raise RunFolderError(f"{run_dir}: no run here yet (no config.json); run notebook {first} first, "
                                     "with the same RUN_DIR")
            cfg = replace(cls(), run_dir=str(run_dir), **asked)
            cfg = cfg.smoke() if smoke else cfg
            path.parent.mkdir(parents=True, exist_ok=True)
            cfg.save(path)
            return cfg
        saved = cls.load(path)
        if saved.smoke_mode != smoke:
            kinds = ("a smoke run", "a real run (SMOKE = False)")
            have, want = (kinds[0], kinds[1]) if saved.smoke_mode else (kinds[1], "a smoke run (SMOKE = True)")
            raise RunFolderError(f"{run_dir} holds {have}, and this is {want}; give this run its own RUN_DIR "
                                 "(or delete that folder's config.json to start it again)")
        # In a smoke run the asked model is the one the real run would train; smoke's own values stand for the rest.
        view = replace(saved, model=saved.real_model) if smoke and saved.real_model else saved
        clash = {k: (getattr(view, k), v) for k, v in asked.items()
                 if getattr(view, k) != v and not (smoke and k in SMOKE and k != "model")}
        if clash:
            said = "; ".join(f"{k} is {old!r} there, {new!r} here" for k, (old, new) in clash.items())
            raise RunFolderError(f"{run_dir} holds a run with other settings ({said}); use a new RUN_DIR for "
                                 "new settings, or set these back")
        if saved.run_dir != str(run_dir):
            # the same run reached by another path (a Drive folder copied, a relative path): follow the folder
            saved = replace(saved, run_dir=str(run_dir))
            saved.save(path)
        return saved

    def require(self, *names: str, made_by: str) -> None:
        """Stop, naming the notebook to run first, when the run folder lacks any of ``names``.

        >>> Config(run_dir="/nonexistent").require("adapter", made_by="03_finetune")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        qeu_vlm.config.RunFolderError: /nonexistent has no adapter yet; run notebook 03_finetune first, ...
        """
        missing = [n for n in names if not (Path(self.run_dir) / n).exists()]
        if missing:
            raise RunFolderError(f"{self.run_dir} has no {', '.join(missing)} yet; run notebook {made_by} first, "
                                 "with the same RUN_DIR")

    def table(self, *names: str) -> str:
        """The settings ``names`` as a two-column Markdown table, for a notebook to show instead of the repr.

        >>> print(Config().table("model", "max_steps"))
        | setting | value |
        |---|---|
        | model | qwen2.5-vl-3b |
        | max_steps | 20 |
        """
        from .metrics import markdown_table

        return markdown_table(["setting", "value"], [[n, getattr(self, n)] for n in names])

    def save(self, path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, path) -> "Config":
        d = json.loads(Path(path).read_text())
        known = {f.name for f in fields(cls)}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in known})
