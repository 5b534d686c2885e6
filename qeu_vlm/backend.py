"""Which library trains and runs the model: Unsloth, or transformers + peft + TRL. Decided here, once, first.

``import unsloth`` patches transformers, peft and TRL when it is imported, and replaces ``trl.SFTTrainer`` with its
own class; a name bound to TRL's class before that stays TRL's. So every entry point (the CLI, the pipeline steps,
the notebooks, the GPU benchmark) calls ``choose`` before anything imports transformers, trl or peft, and the
trainer class is looked up on the ``trl`` module afterwards (``sft_trainer_class``), never bound earlier.

>>> choose("hf")
'hf'
"""
from __future__ import annotations

import os
import sys
from importlib.metadata import PackageNotFoundError, version

BACKENDS = ("auto", "unsloth", "hf")
_PATCHED_BY_UNSLOTH = ("transformers", "trl", "peft")


class BackendError(RuntimeError):
    """A backend that is unknown or cannot run here; the message says why and what to do."""


def _gpu_visible() -> bool:
    import torch

    return torch.cuda.is_available()


def _import_unsloth() -> None:
    import unsloth  # noqa: F401  (imported for its patches)


def _why_not_unsloth() -> str | None:
    """None when Unsloth can run here (and is now imported), else the reason it cannot."""
    if not _gpu_visible():
        return "no CUDA GPU is visible (Unsloth's FastVisionModel loads models on a CUDA GPU only)"
    if "unsloth" not in sys.modules:
        late = [m for m in _PATCHED_BY_UNSLOTH if m in sys.modules]
        if late:
            raise BackendError(f"{', '.join(late)} was imported before Unsloth, so Unsloth's patches would be "
                               "partial; call qeu_vlm.backend.choose() first (restart the runtime on Colab)")
    try:
        _import_unsloth()
    except Exception as e:          # unsloth raises several kinds at import on unsupported setups
        return f"unsloth does not import here ({e.__class__.__name__}: {e})"
    return None


def _trl_before_1_16() -> bool:
    try:
        major, minor = (int(x) for x in version("trl").split(".")[:2])
    except (PackageNotFoundError, ValueError):
        return False
    return (major, minor) < (1, 16)


def triton_on_cpu() -> None:
    """TRL 1.15's ``SFTTrainer`` computes its loss through a Triton kernel even on CPU (1.16 falls back to torch).
    Without a GPU, Triton's interpreter runs that kernel; it must be switched on before TRL defines the kernel."""
    import torch

    if not torch.cuda.is_available() and _trl_before_1_16():
        os.environ.setdefault("TRITON_INTERPRET", "1")


def choose(requested: str = "auto") -> str:
    """``"unsloth"`` or ``"hf"`` for a requested backend (``auto``, ``unsloth``, ``hf``).

    ``auto`` takes Unsloth where it can run (a CUDA GPU with ``unsloth`` importable) and imports it, so its patches
    are in place before transformers is first imported; elsewhere transformers + peft + TRL.
    """
    if requested not in BACKENDS:
        raise BackendError(f"unknown backend {requested!r} (known: {', '.join(BACKENDS)})")
    triton_on_cpu()
    if requested == "hf":
        return "hf"
    why = _why_not_unsloth()
    if why is None:
        return "unsloth"
    if requested == "unsloth":
        raise BackendError(f"the unsloth backend cannot run: {why}. Use backend='hf' (transformers + peft + TRL), "
                           "or run on a CUDA GPU (Colab T4/L4) with unsloth installed.")
    return "hf"


def sft_trainer_class():
    """The ``SFTTrainer`` in force: Unsloth's patched class once Unsloth is imported, else TRL's."""
    import trl

    return trl.SFTTrainer
