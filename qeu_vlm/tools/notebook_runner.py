"""Execute the numbered notebooks in order, each in a fresh kernel, with papermill.

Executed copies land in ``RUN/executed/`` (artefacts of the run, never committed). A failing cell stops the
suite with an error naming the notebook and the cell.

Use::

    run_notebooks("runs/nb", smoke=True)
"""
from __future__ import annotations

import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent.parent          # the package folder
# Installed, the notebooks ship inside the package (pyproject's package-dir); in a checkout they sit beside it.
NOTEBOOK_DIR = next((p for p in (_HERE / "notebooks", _HERE.parent / "notebooks") if p.is_dir()),
                    _HERE.parent / "notebooks")


class NotebookError(RuntimeError):
    """A notebook cell failed; the message names the notebook, the cell and the error."""


def notebooks(folder=NOTEBOOK_DIR) -> list[Path]:
    found = sorted(Path(folder).glob("[0-9][0-9]_*.ipynb"))
    if not found:
        raise FileNotFoundError(f"{folder}: no numbered notebooks here; is qeu_vlm installed with its package data?")
    return found


def run_notebooks(run_dir, smoke: bool = True, folder=NOTEBOOK_DIR, only=None, timeout: int = 900) -> dict:
    """Run each notebook with ``SMOKE`` and ``RUN_DIR`` injected into its ``parameters`` cell; ``{name: seconds}``.

    Relative paths in a notebook (``DATA``, ``POOLS``) mean what they mean where this is called from."""
    import logging

    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    run = Path(run_dir).resolve()
    out = run / "executed"
    out.mkdir(parents=True, exist_ok=True)
    seconds = {}
    # papermill logs each injected parameter it finds no default for; the notebooks' own cells say what ran
    logging.getLogger("papermill").setLevel(logging.ERROR)
    for nb in notebooks(folder):
        if only and nb.stem not in only and nb.name not in only:
            continue
        t = time.perf_counter()
        try:
            pm.execute_notebook(str(nb), str(out / nb.name), parameters={"SMOKE": smoke, "RUN_DIR": str(run)},
                                cwd=str(Path.cwd()), kernel_name="python3", progress_bar=False,
                                execution_timeout=timeout)
        except PapermillExecutionError as e:
            # papermill counts the cell it injects; exec_count is what the reader sees in the executed copy.
            raise NotebookError(f"{nb.name}, cell [{e.exec_count}] failed: {e.ename}: {e.evalue}\n"
                                f"executed copy: {out / nb.name}") from None
        seconds[nb.name] = round(time.perf_counter() - t, 1)
    return seconds
