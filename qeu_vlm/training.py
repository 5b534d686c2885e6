"""Fine-tune: conversations -> collator + loss mask -> SFTTrainer -> adapter, checkpoints and ``log_history.json``.

The steps of Unsloth's vision notebooks, in their order::

    backend.choose(cfg.backend)                   # Unsloth imported first, so TRL's SFTTrainer is its patched one
    model, processor = load_model(cfg, backend)   # FastVisionModel.from_pretrained + get_peft_model
    for_training(model, backend)                  # FastVisionModel.for_training
    trainer = SFTTrainer(model, args=SFTConfig(...), data_collator=UnslothVisionDataCollator(...), ...)
    trainer.train(); trainer.save_model(...)
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from . import backend as backends
from .batching import TrainingError, make_collator, preflight
from .config import Config
from .conversation import as_dataset, with_image_list
from .model import for_training, load_model, precision
from .presets import PRESETS

__all__ = ["TrainingError", "train", "sft_config", "batch_and_accumulation", "precision", "gpu_memory",
           "last_checkpoint", "save_training_log", "check_processes"]


def check_processes(gpus: int | None = None, env=os.environ) -> int:
    """The number of processes ``accelerate launch`` / ``torchrun`` started on this machine (1 when neither did),
    after checking each can have a GPU of its own; machines without a CUDA GPU train in CPU processes. Call it
    before any work: a process without a GPU would otherwise fail deep inside CUDA, after the others started."""
    local = int(env.get("LOCAL_WORLD_SIZE", env.get("WORLD_SIZE", 1)))
    if gpus is None:
        import torch

        gpus = torch.cuda.device_count()
    if 0 < gpus < local:
        raise TrainingError(f"{local} processes were launched on this machine but it has {gpus} CUDA GPU"
                            f"{'s' if gpus > 1 else ''}: each process trains on a GPU of its own; launch with "
                            f"--num_processes {gpus} (accelerate launch) or --nproc_per_node {gpus} (torchrun)")
    return local


def gpu_memory() -> dict:
    """The GPU and its peak reserved memory in GB, as Unsloth's notebooks report them; ``{}`` on CPU."""
    import torch

    if not torch.cuda.is_available():
        return {}
    props = torch.cuda.get_device_properties(0)
    return {"gpu": props.name, "total_gb": round(props.total_memory / 2**30, 3),
            "peak_reserved_gb": round(torch.cuda.max_memory_reserved() / 2**30, 3)}


def _checkpointing_name() -> str:
    from dataclasses import fields

    from trl import SFTConfig

    # transformers 5 renamed the flag; older releases know only the old name
    names = {f.name for f in fields(SFTConfig)}
    return "activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing"


def batch_and_accumulation(cfg: Config) -> tuple[int, int]:
    """Samples per step on the GPU and steps per optimizer update: the run's, else its preset's (sized for the
    preset's GPU), else 2 and 1.

    >>> batch_and_accumulation(Config())
    (1, 8)
    """
    preset = PRESETS.get(cfg.model)
    return (cfg.batch_size or (preset.batch_size if preset else 2),
            cfg.grad_accum or (preset.grad_accum if preset else 1))


def sft_config(cfg: Config, run: Path):
    """TRL's ``SFTConfig`` for the run, as Unsloth's vision notebooks set it: the collator makes the batches
    (``skip_prepare_dataset``), no truncation by the trainer, 8-bit AdamW on a GPU."""
    import torch
    from trl import SFTConfig

    batch, accumulation = batch_and_accumulation(cfg)
    return SFTConfig(
        output_dir=str(Path(run) / "checkpoints"), max_steps=cfg.max_steps, seed=cfg.seed, data_seed=cfg.seed,
        per_device_train_batch_size=batch, per_device_eval_batch_size=batch,
        gradient_accumulation_steps=accumulation,
        learning_rate=cfg.learning_rate, lr_scheduler_type=cfg.lr_schedule, warmup_steps=cfg.warmup_steps,
        optim=cfg.optim or ("adamw_8bit" if torch.cuda.is_available() else "adamw_torch"),
        logging_steps=cfg.logging_steps, eval_strategy="steps" if cfg.eval_steps else "no",
        eval_steps=cfg.eval_steps or None, save_strategy="steps", save_steps=cfg.save_steps,
        report_to="none", remove_unused_columns=False, max_length=None,
        dataset_kwargs={"skip_prepare_dataset": True}, dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),        # pinning needs a GPU (torch warns on CPU)
        # without it, processes launched on a machine without a GPU each train alone instead of as one gloo group
        use_cpu=not torch.cuda.is_available(),
        ddp_find_unused_parameters=False,       # LoRA and full fine-tuning use every trained weight in each step
        **{_checkpointing_name(): cfg.gradient_checkpointing}, **precision())


def last_checkpoint(run: Path):
    """The run folder's latest checkpoint to resume from, or None."""
    from transformers.trainer_utils import get_last_checkpoint

    folder = Path(run) / "checkpoints"
    return get_last_checkpoint(str(folder)) if folder.exists() else None


def eval_lines():
    """The trainer's terminal progress bar, printing one line per evaluation instead of every log's dict (in a
    notebook the trainer draws its own table, which is left as it is)."""
    from transformers.trainer_callback import ProgressCallback

    class EvalLines(ProgressCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            if state.is_world_process_zero and self.training_bar is not None and "eval_loss" in (logs or {}):
                self.training_bar.write(f"step {state.global_step}: eval loss {logs['eval_loss']:.4f}")

    return EvalLines()


def train(cfg: Config, train_convs: list, eval_convs: list, run: Path, resume: bool = True, callbacks=(),
          model=None, processor=None, collator=None, lengths: list | None = None, optimizer=None):
    """Fine-tune on conversations (as ``to_conversation`` makes them) and save ``adapter/`` (safetensors),
    ``log_history.json``, ``train_stats.json`` and checkpoints under ``run``; resumes from the latest checkpoint.
    Returns the trainer.

    What a caller may hand over instead of the defaults: ``model`` and ``processor`` already loaded (``load_model``);
    the ``collator`` (``make_collator``'s, or one wrapping it); ``lengths``, the token counts of the train samples
    when the caller ran the length pre-flight itself (``batching.preflight``); ``optimizer(trainer)`` returning the
    optimizer the trainer should use; ``callbacks``, the trainer's own hooks."""
    backend = backends.choose(cfg.backend)       # before transformers, trl or peft is imported
    from transformers import set_seed
    from transformers.trainer_callback import ProgressCallback

    run = Path(run)
    check_processes()
    if cfg.eval_steps and not eval_convs:
        raise TrainingError("eval asked for (eval_steps > 0) but there is nothing to evaluate: the eval split is empty")
    set_seed(cfg.seed)
    if model is None:
        model, processor = load_model(cfg, backend)
    collator = collator or make_collator(cfg, model, processor, backend)
    train_samples, eval_samples = [with_image_list(c) for c in train_convs], [with_image_list(c) for c in eval_convs]
    if lengths is None:
        lengths = preflight(collator, train_samples, range(len(train_samples)), cfg.max_length)
        preflight(collator, eval_samples, range(len(eval_samples)), cfg.max_length, "eval")
    last = last_checkpoint(run) if resume else None
    for_training(model, backend)
    # Unsloth's notebooks hand SFTTrainer a plain list; TRL takes a Dataset.
    as_data = (lambda xs: xs or None) if backend == "unsloth" else (lambda xs: as_dataset(xs) if xs else None)
    trainer = backends.sft_trainer_class()(
        model=model, args=sft_config(cfg, run), train_dataset=as_data(train_samples),
        eval_dataset=as_data(eval_samples), data_collator=collator, processing_class=processor,
        callbacks=list(callbacks))
    if trainer.pop_callback(ProgressCallback) is not None:
        trainer.add_callback(eval_lines())
    if optimizer:
        trainer.optimizer = optimizer(trainer)
    _say_processes(trainer)
    if last and cfg.full_finetune and backend == "hf":
        # transformers 5 Trainer reloads full weights with load_state_dict(strict=False) under the checkpoint's
        # legacy key names, which match nothing in Qwen2.5-VL: it would silently resume from the initial weights.
        # from_pretrained applies the key conversion; the Trainer still restores optimizer, scheduler and RNG.
        model.load_state_dict(type(model).from_pretrained(last).state_dict())
    before = gpu_memory()
    out = trainer.train(resume_from_checkpoint=last)
    save_training_log(trainer, out, run, backend, lengths, before)
    trainer.save_model(str(run / "adapter"))        # every process: ZeRO-3 gathers the weights here; one writes
    if trainer.is_world_process_zero():
        processor.save_pretrained(str(run / "adapter"))
    trainer.accelerator.wait_for_everyone()         # no process returns before the files are there
    return trainer


def effective_batch(args) -> dict:
    """Samples per optimizer step: per device x processes x accumulation (TRL's definition)."""
    return {"per_device_batch": args.per_device_train_batch_size, "processes": args.world_size,
            "grad_accum": args.gradient_accumulation_steps,
            "effective_batch": args.per_device_train_batch_size * args.world_size * args.gradient_accumulation_steps}


def _say_processes(trainer) -> None:
    """Each process names itself and its device when there are several; the first states the effective batch."""
    import torch.distributed as dist

    args, b = trainer.args, effective_batch(trainer.args)
    if args.world_size > 1:
        print(f"process {args.process_index} of {args.world_size} ({dist.get_backend()}): model on "
              f"{next(trainer.model.parameters()).device}", flush=True)
    if trainer.is_world_process_zero():
        print(f"effective batch {b['effective_batch']} = {b['per_device_batch']} per device x {b['processes']} "
              f"process{'es' if b['processes'] > 1 else ''} x {b['grad_accum']} accumulation", flush=True)


def save_training_log(trainer, out, run, backend: str, lengths: list, before: dict) -> None:
    """``log_history.json`` (the losses notebook 04 plots) and ``train_stats.json`` (time, speed, GPU memory, the
    effective batch) in the run folder, written once: by the first process when ``accelerate launch`` started
    several. ``out``: what ``trainer.train`` returned; ``before``: ``gpu_memory()`` before training."""
    if not trainer.is_world_process_zero():
        return
    run = Path(run)
    after = gpu_memory()
    stats = {
        "backend": backend,
        "steps": trainer.state.global_step,
        "train_conversations": len(lengths),
        "runtime_s": round(out.metrics["train_runtime"], 1),
        "tokens_per_sample": round(sum(lengths) / max(1, len(lengths)), 1),
        "samples_per_s": round(out.metrics["train_samples_per_second"], 3),
        "device": after.get("gpu", "cpu"),
        "trainer": type(trainer).__name__,
        **effective_batch(trainer.args),
    }
    if after:
        stats |= {"gpu_total_gb": after["total_gb"], "peak_reserved_gb": after["peak_reserved_gb"],
                  "peak_for_training_gb": round(after["peak_reserved_gb"] - before["peak_reserved_gb"], 3)}
    (run / "train_stats.json").write_text(json.dumps(stats, indent=1))
    (run / "log_history.json").write_text(json.dumps(trainer.state.log_history, indent=1))
