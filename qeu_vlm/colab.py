"""What a notebook needs to know about where it runs: Colab or not, and Google Drive mounted when used."""
from __future__ import annotations

import os

DRIVE = "/content/drive"


def on_colab() -> bool:
    return any(k.startswith("COLAB_") for k in os.environ)


def mount_drive(*paths) -> bool:
    """Mount Google Drive when any of ``paths`` lies on it (on Colab); True if mounted.

    Off Colab a Drive path is an error, named, rather than a folder created in the wrong place.
    """
    used = [str(p) for p in paths if p and str(p).startswith(DRIVE)]
    if not used:
        return False
    if not on_colab():
        raise RuntimeError(f"{used[0]}: a Google Drive path, but this is not Colab; use a local folder")
    from google.colab import drive  # type: ignore

    drive.mount(DRIVE)
    return True
