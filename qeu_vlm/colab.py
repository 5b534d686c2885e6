"""What a notebook needs to know about where it runs: Colab or not, the run folder, Google Drive mounted when used.

Each Colab notebook runs in its own runtime, so the run folder they share must outlive a runtime: on Colab it
defaults to Drive. Smoke runs default to a folder of their own, so they never meet a real run's settings.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys

DRIVE = "/content/drive"
# RUN_DIR = None in a notebook picks one of these; the same in all six, so nobody edits six cells.
DEFAULT_RUN = {(True, False): f"{DRIVE}/MyDrive/qeu_vlm/run", (True, True): f"{DRIVE}/MyDrive/qeu_vlm/smoke",
               (False, False): "runs/replay", (False, True): "runs/smoke"}


def on_colab() -> bool:
    return any(k.startswith("COLAB_") for k in os.environ)


def smoke_asked(smoke: bool = False) -> bool:
    """Smoke mode as ``Config.open`` decides it: the notebook's ``SMOKE`` or ``QEU_VLM_SMOKE=1``."""
    return bool(smoke) or os.environ.get("QEU_VLM_SMOKE") == "1"


def run_folder(run_dir=None, smoke: bool = False) -> str:
    """The run folder: ``run_dir`` if given, else ``QEU_VLM_RUN_DIR``, else the default for Colab or not and
    smoke or not (``DEFAULT_RUN``).

    >>> run_folder("runs/mine"), run_folder(None, smoke=True) in ("runs/smoke", DEFAULT_RUN[(True, True)])
    ('runs/mine', True)
    """
    if run_dir:
        return str(run_dir)
    return os.environ.get("QEU_VLM_RUN_DIR") or DEFAULT_RUN[(on_colab(), smoke_asked(smoke))]


def mount_drive(*paths) -> bool:
    """Mount Google Drive when any of ``paths`` (run folder, data, pools, test data) lies on it, on Colab;
    True if Drive is mounted. A path that is not on Drive (None, ``synthetic``, ``hub:...``) is ignored.

    Off Colab a Drive path is an error, named, rather than a folder created in the wrong place.
    """
    used = [str(p) for p in paths if p and str(p).startswith(DRIVE)]
    if not used:
        return False
    if not on_colab():
        raise RuntimeError(f"{used[0]}: a Google Drive path, but this is not Colab; use a local folder")
    if os.path.isdir(f"{DRIVE}/MyDrive"):        # mounted by an earlier cell of this runtime
        return True
    from google.colab import drive  # type: ignore

    drive.mount(DRIVE)
    return True


def _widgets() -> bool:
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


# Unsloth's own Colab install recipe (the first cell of its vision notebooks), with the versions this suite is tested
# on (requirements-colab.txt). Colab's CUDA torch is kept; xformers follows it, as in Unsloth's recipe.
XFORMERS = {"2.10": "0.0.34", "2.9": "0.0.33.post1", "2.8": "0.0.32.post2"}
COLAB_STACK = (["sentencepiece", "protobuf", "datasets==4.8.5", "huggingface_hub==1.33.0", "hf_transfer"],
               ["--no-deps", "unsloth==2026.10.9", "unsloth_zoo==2026.10.9", "bitsandbytes==0.50.2",
                "accelerate==1.15.0", "{xformers}", "peft==0.21.2", "trl==1.15.0", "triton",
                "cut_cross_entropy==25.1.1", "transformers==5.17.0"],
               ["--no-deps", "--upgrade", "torchao==0.18.0"])


def install_colab_stack() -> None:
    """Install Unsloth and the libraries it patches on Colab, quietly; on failure print pip's output and stop."""
    import torch

    v = re.match(r"\d+\.\d+", str(torch.__version__)).group(0)
    xformers = "xformers==" + XFORMERS.get(v, "0.0.35")
    for step in COLAB_STACK:
        step = [xformers if a == "{xformers}" else a for a in step]
        pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", *step], capture_output=True, text=True)
        if pip.returncode:
            print(pip.stdout, pip.stderr)
            raise RuntimeError("pip install " + " ".join(step) + " failed (its output is above)")


def open_run(run_dir=None, smoke: bool = False, first: str | None = None, **settings):
    """A notebook's start: quiet output, the run folder (on Drive on Colab, mounted), and its settings
    (``Config.open``), with the data's Drive folders mounted too. ``first`` and ``settings``: as ``Config.open``."""
    from .config import Config

    quiet_output()                       # before any library loads
    run_dir = run_folder(run_dir, smoke)
    mount_drive(run_dir, *settings.values())
    cfg = Config.open(run_dir, smoke=smoke, first=first, **settings)
    mount_drive(cfg.data, cfg.test_data, cfg.pools)
    return cfg


def quiet_output() -> None:
    """Output a student can read, called first in every notebook: no library warnings or log lines, and
    progress bars only where they draw as one bar.

    With ipywidgets (Colab, most Jupyter installs) tqdm draws one widget per bar. Without it (papermill, CI, a
    bare kernel) a text bar becomes a pink stderr line per update in a saved notebook, so bars are off there, by
    each library's own switch. Errors still show: only warnings and info logs are silenced.
    """
    import logging
    import warnings

    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    for category in (FutureWarning, DeprecationWarning):
        warnings.filterwarnings("ignore", category=category)
    warnings.filterwarnings("ignore", message=".*pin_memory.*")          # DataLoader on a machine without a GPU
    warnings.filterwarnings("ignore", message=".*IProgress not found.*")  # tqdm without ipywidgets
    # torch sets its loggers' levels when it is first imported, so it is imported before they are set. torchao and
    # bitsandbytes log at import on the Colab stack (a kernel build they cannot load here, a torch deprecation).
    import torch  # noqa: F401

    for name in ("transformers", "datasets", "huggingface_hub", "accelerate", "peft", "trl", "unsloth", "torch",
                 "torch.utils._pytree", "torchao", "bitsandbytes"):
        logging.getLogger(name).setLevel(logging.ERROR)
    # The Trainer shows its notebook table of losses only while this logger lets warnings through; above that it
    # prints one dict per step instead.
    logging.getLogger("transformers.training_args").setLevel(logging.WARNING)
    if not _widgets():
        import datasets
        from huggingface_hub.utils import disable_progress_bars

        # huggingface_hub's switch also turns off this package's bars (its tqdm) and transformers' (read when
        # transformers is imported, which is after this call: the backend is chosen first).
        disable_progress_bars()
        datasets.disable_progress_bars()
        if "transformers" in sys.modules:
            from transformers.utils.logging import disable_progress_bar

            disable_progress_bar()
