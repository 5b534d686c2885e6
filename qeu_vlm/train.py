"""Fine-tune: Unsloth's FastVisionModel on a CUDA GPU, transformers + peft + TRL elsewhere; one Config.

conversation -> (collator: tokens, pixels, labels) -> LossMask -> SFTTrainer -> checkpoints, log_history.json
"""
from __future__ import annotations

import json
from pathlib import Path

from .config import Config
from .presets import PRESETS, get_preset

LOSS_MODES = ("final", "assistant", "all")


class TrainingError(RuntimeError):
    """A run that must not start (pre-flight) or a backend that cannot run here."""


def resolve_backend(cfg: Config) -> str:
    import torch

    if cfg.backend not in ("auto", "unsloth", "hf"):
        raise TrainingError(f"unknown backend {cfg.backend!r} (auto, unsloth, hf)")
    if cfg.backend == "hf":
        return "hf"
    why = None
    if not torch.cuda.is_available():
        why = "no CUDA GPU is visible (Unsloth's vision models do not load on CPU)"
    else:
        try:
            import unsloth  # noqa: F401
        except Exception as e:               # unsloth raises several kinds at import on unsupported setups
            why = f"unsloth does not import here ({e.__class__.__name__}: {e})"
    if why is None:
        return "unsloth"
    if cfg.backend == "unsloth":
        raise TrainingError(f"the unsloth backend cannot run: {why}. Use backend='hf' (transformers + peft + TRL), "
                            "or run on a CUDA GPU (Colab T4/L4) with unsloth installed.")
    return "hf"


def answer_markers(tokenizer) -> tuple[list[int], int]:
    """(the token ids that open an assistant answer, the id that closes it), read off the tokenizer's own chat
    template, so Qwen (``<|im_start|>assistant``), Llama 3.2 (``<|start_header_id|>assistant...``) and Pixtral
    (``[/INST]`` ... ``</s>``) are all masked right without a table of formats."""
    q, a = "QQQQ", "AAAA"
    text = tokenizer.apply_chat_template([{"role": "user", "content": q}, {"role": "assistant", "content": a}],
                                         tokenize=False)
    # Trailing whitespace of the header may merge with the answer's first characters, so it is matched as answer.
    head = text[text.index(q) + len(q):text.index(a)].rstrip()
    close = tokenizer.encode(text[text.index(a) + len(a):], add_special_tokens=False)
    if not head or not close:
        raise TrainingError(f"cannot find the assistant markers in the chat template's rendering {text!r}")
    return tokenizer.encode(head, add_special_tokens=False), close[0]


class LossMask:
    """Wrap a collator and keep loss only on the final answer, on every assistant turn, or everywhere.

    Answers are found by the markers of the tokenizer's chat template (``answer_markers``).
    """

    def __init__(self, collator, tokenizer, mode: str = "final"):
        if mode not in LOSS_MODES:
            raise TrainingError(f"unknown loss mode {mode!r} (known: {', '.join(LOSS_MODES)})")
        self.collator, self.mode = collator, mode
        self.head, self.end = answer_markers(tokenizer)
        self.tokenizer = tokenizer
        self.cut = None          # text that ends the supervised part of the final answer early (``curriculum``)

    def _until(self, ids: list[int], s: int, e: int) -> int:
        """Where ``self.cut`` begins inside the answer ids[s:e] (``e`` if it does not occur)."""
        text, ends = "", []
        for j in range(s, e):
            text += self.tokenizer.decode([ids[j]])
            ends.append(len(text))
        c = text.find(self.cut)
        return e if c < 0 else s + next(i for i, end in enumerate(ends) if end > c)

    def spans(self, ids: list[int]) -> list[tuple[int, int]]:
        out, h, n = [], self.head, len(self.head)
        for i in range(len(ids) - n + 1):
            if ids[i] == h[0] and ids[i:i + n] == h:
                s = i + n
                while s < len(ids) and not self.tokenizer.decode([ids[s]]).strip():   # the newline(s) after the header
                    s += 1
                e = next((j for j in range(s, len(ids)) if ids[j] == self.end), len(ids) - 1)
                out.append((s, e + 1))                        # the answer and its end marker
        return out

    def __call__(self, examples):
        batch = self.collator(examples)
        if self.mode == "all":
            return batch
        labels = batch["labels"]
        keep = labels.new_zeros(labels.shape, dtype=bool)
        for b, ids in enumerate(batch["input_ids"].tolist()):
            spans = self.spans(ids)
            for s, e in spans[-1:] if self.mode == "final" else spans:
                keep[b, s:self._until(ids, s, e) if self.cut and (s, e) == spans[-1] else e] = True
        batch["labels"] = labels.masked_fill(~keep, -100)
        return batch


def precision():
    """fp16 on a T4 (no bf16), bf16 where supported, fp32 on CPU."""
    import torch

    if not torch.cuda.is_available():
        return {"fp16": False, "bf16": False}
    bf16 = torch.cuda.is_bf16_supported()
    return {"fp16": not bf16, "bf16": bf16}


def gpu_memory() -> dict:
    """The GPU and its peak reserved memory in GB, as Unsloth's notebooks report them; ``{}`` on CPU."""
    import torch

    if not torch.cuda.is_available():
        return {}
    props = torch.cuda.get_device_properties(0)
    return {"gpu": props.name, "total_gb": round(props.total_memory / 2**30, 3),
            "peak_reserved_gb": round(torch.cuda.max_memory_reserved() / 2**30, 3)}


def _four_bit(cfg: Config) -> bool:
    if cfg.load_in_4bit is not None:
        return cfg.load_in_4bit
    preset = PRESETS.get(cfg.model)
    return bool(preset and preset.load_in_4bit)


def _model_path(cfg: Config, run: Path) -> str:
    if cfg.model == "tiny":
        from .tiny_model import build_tiny_vlm

        path = run / "tiny_model"
        if not (path / "config.json").exists():
            build_tiny_vlm(path, seed=cfg.seed, max_pixels=cfg.max_pixels or 224 * 160, size=cfg.tiny_size,
                           **(cfg.tiny_overrides or {}))
        return str(path)
    if cfg.model in PRESETS:
        return get_preset(cfg.model).hub_id
    if not Path(cfg.model).exists():
        raise TrainingError(f"unknown model {cfg.model!r}: not a preset ({', '.join(PRESETS)}), 'tiny', or a folder")
    return cfg.model


def load_model(cfg: Config, run: Path, backend: str, adapter: str | None = None):
    """(model, processor) for the backend; LoRA applied unless ``full_finetune``; ``adapter`` loads trained LoRA."""
    path = _model_path(cfg, run)
    if backend == "unsloth":
        from unsloth import FastVisionModel

        model, processor = FastVisionModel.from_pretrained(
            adapter or path, load_in_4bit=_four_bit(cfg),
            use_gradient_checkpointing="unsloth")
        if adapter is None and not cfg.full_finetune:
            model = FastVisionModel.get_peft_model(
                model, finetune_vision_layers=cfg.finetune_vision, finetune_language_layers=cfg.finetune_language,
                finetune_attention_modules=cfg.finetune_attention, finetune_mlp_modules=cfg.finetune_mlp,
                r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=0, bias="none", random_state=cfg.seed)
        return model, processor
    if cfg.model == "tiny":
        from .tiny_model import load_tiny_vlm

        # Fully trained tiny weights are saved whole in adapter/; LoRA adapters load on top of the base.
        model, processor = load_tiny_vlm(adapter if adapter and cfg.full_finetune else path)
        adapter = None if cfg.full_finetune else adapter
    else:
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        quant = None
        if _four_bit(cfg) and torch.cuda.is_available():     # equal settings to Unsloth's 4-bit loading
            from transformers import BitsAndBytesConfig

            quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                       bnb_4bit_compute_dtype=torch.bfloat16 if precision()["bf16"] else torch.float16)
        model = AutoModelForImageTextToText.from_pretrained(path, dtype="auto", quantization_config=quant)
        if quant is not None:
            from peft import prepare_model_for_kbit_training

            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True)
        try:
            processor = AutoProcessor.from_pretrained(path)
        except (ImportError, ValueError, OSError):
            processor = None
        if not hasattr(processor, "image_processor"):
            # A folder saved with the offline image-only processor: AutoProcessor fails or falls back to the tokenizer
            from .tiny_model import load_processor

            processor = load_processor(path)
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter)
    elif not cfg.full_finetune:
        from peft import LoraConfig, get_peft_model

        targets = ([] if not cfg.finetune_attention else ["q_proj", "k_proj", "v_proj", "o_proj", "qkv", "proj"]) + \
                  ([] if not cfg.finetune_mlp else ["gate_proj", "up_proj", "down_proj", "fc1", "fc2"])
        model = get_peft_model(model, LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=0.0,
                                                 target_modules=targets, task_type="CAUSAL_LM"))
    return model, processor


def make_collator(cfg: Config, model, processor, backend: str):
    if backend == "unsloth":
        from unsloth.trainer import UnslothVisionDataCollator

        base = UnslothVisionDataCollator(model, processor, max_seq_length=cfg.max_length,
                                         resize="max", train_on_responses_only=False)
    else:
        from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

        base = DataCollatorForVisionLanguageModeling(processor)
    tok = getattr(processor, "tokenizer", processor)
    return LossMask(base, tok, cfg.loss_on)


def preflight(collator, samples: list, ids: list, max_length: int | None, what: str = "train") -> list[int]:
    """Raise before training on samples too long (truncation would cut image tokens) or with no loss."""
    lengths = []
    for sample, rid in zip(samples, ids):
        b = collator([sample])
        n = int(b["attention_mask"].sum())
        lengths.append(n)
        if max_length is not None and n > max_length:
            raise TrainingError(f"{what} record {rid}: {n} tokens exceed max_length={max_length}; truncation would cut "
                                f"image tokens. Raise max_length to at least {n} or lower the image cap (max_pixels).")
        if not (b["labels"] != -100).any():
            raise TrainingError(f"{what} record {rid}: every label is masked, nothing to learn from")
    return lengths


def backend_form(convs: list[dict], backend: str) -> list[dict]:
    """Conversations in the form each collator reads: Unsloth takes images inline in the messages,
    TRL takes placeholders plus an ``images`` list."""
    from .conversation import for_trl

    if backend == "unsloth":
        return [{"messages": c["messages"]} for c in convs]
    return [for_trl(c) for c in convs]


def _checkpointing_name() -> str:
    from dataclasses import fields

    from trl import SFTConfig

    # transformers 5.x renamed the flag; Colab's Unsloth pins an older release that knows only the old name
    return "activation_checkpointing" if "activation_checkpointing" in {f.name for f in fields(SFTConfig)} \
        else "gradient_checkpointing"


def curriculum(mask: LossMask, steps: int):
    """Judgement before address: for the first ``steps`` steps the final answer carries loss only up to its
    judgement line, so the hard, noisy mode and position tokens do not drown the passed/defective signal."""
    from transformers import TrainerCallback

    mask.cut = "defect mode"

    class Curriculum(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            if state.global_step >= steps:
                mask.cut = None

    return Curriculum()


def time_budget(seconds: float):
    """A callback that ends training once ``seconds`` of training have passed (checked after each step)."""
    import time

    from transformers import TrainerCallback

    class TimeBudget(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            self.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            if time.perf_counter() - self.start > seconds:
                control.should_training_stop = True

    return TimeBudget()


def optimizer_with_vision_rate(trainer, vision_lr: float):
    """The optimizer the Trainer would build (its class, its weight decay split), with the vision tower and its
    merger at their own peak rate. The scheduler scales each group's rate, so both follow the same schedule."""
    model, args = trainer.model, trainer.args
    cls, kwargs = trainer.get_optimizer_cls_and_kwargs(args, model)
    decay = set(trainer.get_decay_parameter_names(model))
    groups = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            groups.setdefault((".visual." in f".{name}", name in decay), []).append(p)
    if not any(vision for vision, _ in groups):
        raise TrainingError("vision_learning_rate is set, but the model has no trainable 'visual' parameters")
    return cls([{"params": ps, "weight_decay": args.weight_decay if d else 0.0, **({"lr": vision_lr} if v else {})}
                for (v, d), ps in groups.items()], **kwargs)


def train(cfg: Config, train_convs: list, eval_convs: list, run: Path, resume: bool = True, callbacks=None):
    """Fine-tune on conversations (inline images, as ``to_conversation`` makes them) and save ``adapter/``
    (safetensors), ``log_history.json`` and checkpoints under ``run``."""
    import datasets
    from transformers import set_seed
    from transformers.trainer_utils import get_last_checkpoint
    from trl import SFTConfig, SFTTrainer

    if cfg.eval_steps and not eval_convs:
        raise TrainingError("eval asked for (eval_steps > 0) but there is nothing to evaluate: the eval split is empty")
    set_seed(cfg.seed)
    backend = resolve_backend(cfg)
    model, processor = load_model(cfg, run, backend)
    last = get_last_checkpoint(str(run / "checkpoints")) if resume and (run / "checkpoints").exists() else None
    budget, warm = cfg.time_budget_s, None
    collator = make_collator(cfg, model, processor, backend)
    train_samples, eval_samples = backend_form(train_convs, backend), backend_form(eval_convs, backend)
    lengths = preflight(collator, train_samples, list(range(len(train_samples))), cfg.max_length)
    preflight(collator, eval_samples, list(range(len(eval_samples))), cfg.max_length, "eval")
    from .planner import preflight as memory_preflight

    (run / "plan.txt").write_text(memory_preflight(cfg, lengths))
    if cfg.vision_warmup_steps and not last:     # a resumed run's checkpoint already holds the warmed-up tower
        from .vision_warmup import warm_up_vision

        warm = warm_up_vision(model, processor, train_convs, cfg.vision_warmup_steps,
                              cfg.learning_rate, cfg.batch_size or 8, cfg.seed)
        (run / "vision_warmup.json").write_text(json.dumps(warm, indent=1))
        if budget:
            budget = max(1.0, budget - warm["seconds"])   # the stage is part of the run's CPU budget
    preset = PRESETS.get(cfg.model)
    args = SFTConfig(
        output_dir=str(run / "checkpoints"), max_steps=cfg.max_steps, seed=cfg.seed, data_seed=cfg.seed,
        per_device_train_batch_size=cfg.batch_size or (preset.batch_size if preset else 2),
        per_device_eval_batch_size=cfg.batch_size or (preset.batch_size if preset else 2),
        gradient_accumulation_steps=cfg.grad_accum or (preset.grad_accum if preset else 1),
        learning_rate=cfg.learning_rate, lr_scheduler_type=cfg.lr_schedule, warmup_steps=cfg.warmup_steps,
        optim="adamw_8bit" if backend == "unsloth" else "adamw_torch",
        logging_steps=cfg.logging_steps, eval_strategy="steps" if cfg.eval_steps else "no",
        eval_steps=cfg.eval_steps or None, save_strategy="steps", save_steps=cfg.save_steps,
        report_to="none", remove_unused_columns=False, max_length=None,
        dataset_kwargs={"skip_prepare_dataset": True}, dataloader_num_workers=0,
        **{_checkpointing_name(): cfg.gradient_checkpointing}, **precision())
    # Unsloth's notebooks hand SFTTrainer a plain list (PIL images inline); TRL takes a Dataset.
    as_ds = lambda xs: (xs if backend == "unsloth" else datasets.Dataset.from_list(xs)) if xs else None  # noqa: E731
    trainer = SFTTrainer(model=model, args=args, train_dataset=as_ds(train_samples),
                         eval_dataset=as_ds(eval_samples), data_collator=collator, processing_class=processor,
                         callbacks=(callbacks or []) + ([time_budget(budget)] if budget else [])
                         + ([curriculum(collator, cfg.judgement_first_steps)] if cfg.judgement_first_steps else []))
    if cfg.vision_learning_rate is not None:
        trainer.optimizer = optimizer_with_vision_rate(trainer, cfg.vision_learning_rate)
    if last and cfg.full_finetune and backend == "hf":
        # transformers 5.x Trainer reloads full weights with load_state_dict(strict=False) under the
        # checkpoint's legacy key names, which match nothing in Qwen2.5-VL: it would silently resume from
        # the initial weights. from_pretrained applies the key conversion; the Trainer still restores
        # optimizer, scheduler and RNG state.
        model.load_state_dict(type(model).from_pretrained(last).state_dict())
    before = gpu_memory()
    out = trainer.train(resume_from_checkpoint=last)
    after = gpu_memory()
    stats = {"backend": backend, "steps": trainer.state.global_step, "runtime_s": round(out.metrics["train_runtime"], 1),
             "tokens_per_sample": round(sum(lengths) / max(1, len(lengths)), 1),
             "samples_per_s": round(out.metrics["train_samples_per_second"], 3), "device": after.get("gpu", "cpu")}
    if warm:
        stats["vision_warmup_s"] = warm["seconds"]
    if after:
        stats |= {"gpu_total_gb": after["total_gb"], "peak_reserved_gb": after["peak_reserved_gb"],
                  "peak_for_training_gb": round(after["peak_reserved_gb"] - before["peak_reserved_gb"], 3)}
    (run / "train_stats.json").write_text(json.dumps(stats, indent=1))
    (run / "log_history.json").write_text(json.dumps(trainer.state.log_history, indent=1))
    trainer.save_model(str(run / "adapter"))
    processor.save_pretrained(str(run / "adapter"))
    return trainer
