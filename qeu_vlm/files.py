"""Output folders written whole or not at all: work happens in ``NAME.partial`` beside the final folder, which
only a finished run renames into place, so a killed run never leaves a folder that looks complete.

>>> import tempfile; from pathlib import Path; root = Path(tempfile.mkdtemp())
>>> with staged(root / "run") as tmp: _ = (tmp / "done.txt").write_text("ok")
>>> sorted(p.name for p in root.iterdir()), (root / "run" / "done.txt").read_text()
(['run'], 'ok')
"""
from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path


class OutputFolderError(OSError):
    """An output folder that cannot be written: the path is a file, or its parent is not writable."""


def check_writable(out) -> Path:
    """``out`` as a Path, once it is sure the folder can be created and written (before any work starts)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputFolderError(f"{out}: is a file, not a folder; give the run a folder path")
    parent = next((p for p in [out, *out.parents] if p.exists()), Path("."))
    if not parent.is_dir():
        raise OutputFolderError(f"{out}: {parent} is a file, so no folder can be made under it")
    try:
        tempfile.TemporaryFile(dir=parent).close()
    except OSError as e:
        raise OutputFolderError(f"{out}: cannot write in {parent} ({e.strerror or e})") from None
    return out


@contextmanager
def staged(out):
    """Yield ``out.partial`` (emptied first) to write into; on success it replaces ``out`` whole. On an error or
    Ctrl-C ``out`` is left as it was and the partial folder stays for a look (the next run empties it)."""
    out = check_writable(out)
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    yield tmp
    old = out.with_name(out.name + ".replaced")
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        os.rename(out, old)
    os.rename(tmp, out)
    shutil.rmtree(old, ignore_errors=True)
