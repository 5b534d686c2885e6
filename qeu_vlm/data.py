"""Load records and reference pools from the Hub, a Drive/local folder, a saved dataset or the twin.

Every source is validated on load: each problem names the row and the field. ``collect=True`` gathers
every problem into a report instead of stopping at the first; nothing is dropped silently.
"""
from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import datasets
from PIL import Image

from .domain import IMAGE_TYPES, STAR_TABLE, Address, DomainError, check_record

COLUMNS = ("dir", "position", "type", "bbox_str", "image")
POOL_KINDS = ("DST", "RAW", "DST_STAR", "RAW_STAR")


class DataError(ValueError):
    """Bad input data; the message names the source, the row and the field."""


@dataclass
class Problem:
    row: int | str
    field: str
    message: str

    def __str__(self):
        return f"row {self.row}, field {self.field!r}: {self.message}"


@dataclass
class ValidationReport:
    source: str
    rows: int = 0
    problems: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def __str__(self):
        head = f"{self.source}: {self.rows} rows, {len(self.problems)} problems"
        return "\n".join([head] + [f"  {p}" for p in self.problems])


def _image_problem(img) -> str | None:
    try:
        if isinstance(img, Image.Image):
            img.load()
            return None
        if isinstance(img, dict):
            data = img.get("bytes") or (Path(img["path"]).read_bytes() if img.get("path") else None)
            if not data:
                return "no image bytes or path"
            Image.open(io.BytesIO(data)).load()
            return None
        return f"not an image: {type(img).__name__}"
    except Exception as e:                           # any decoder failure means unreadable
        return f"unreadable image ({e.__class__.__name__}: {e})"


def validate(ds: datasets.Dataset, source: str = "dataset", collect: bool = False) -> ValidationReport:
    """Check the schema and every row. Raises DataError at the first problem unless ``collect``."""
    report = ValidationReport(source, len(ds))

    def add(row, fld, msg):
        p = Problem(row, fld, msg)
        if not collect:
            raise DataError(f"{source}: {p}")
        report.problems.append(p)

    cols = set(ds.column_names)
    for c in COLUMNS:
        if c not in cols:
            add("*", c, f"missing column (expected columns: {', '.join(COLUMNS)})")
    for c in sorted(cols - set(COLUMNS)):
        add("*", c, f"unknown column (expected columns: {', '.join(COLUMNS)})")
    if not set(COLUMNS) <= cols:
        return report
    if isinstance(ds.features.get("image"), datasets.Image):
        ds = ds.cast_column("image", datasets.Image(decode=False))
    for i, rec in enumerate(ds):
        try:
            check_record(rec)
        except DomainError as e:
            fld, _, msg = str(e).partition(": ")
            add(i, fld if fld in COLUMNS else "dir/position/bbox_str", msg if fld in COLUMNS else str(e))
        prob = _image_problem(rec["image"])
        if prob:
            add(i, "image", prob)
    return report


def load_records(source: str, split: str = "train", collect: bool = False, token: str | None = None):
    """Load and validate records.

    ``source``: ``hub:OWNER/NAME`` (token from ``HF_TOKEN`` unless given), a saved dataset
    (``save_to_disk`` folder; ``split`` picks from a DatasetDict), or a Drive-style folder with
    ``metadata.csv`` and images. Returns ``(dataset, report)``.
    """
    if source.startswith("hub:"):
        repo = source[4:]
        from huggingface_hub import get_token

        ds = datasets.load_dataset(repo, split=split, token=token or get_token())   # HF_TOKEN or Colab's secrets
    else:
        path = Path(source)
        if not path.exists():
            raise DataError(f"{source}: no such folder")
        if (path / "metadata.csv").exists():
            ds = _load_folder(path)
        elif (path / "dataset_dict.json").exists() or (path / "dataset_info.json").exists():
            ds = datasets.load_from_disk(str(path))
            if isinstance(ds, datasets.DatasetDict):
                if split not in ds:
                    raise DataError(f"{source}: no split {split!r} (has {', '.join(ds)})")
                ds = ds[split]
        else:
            raise DataError(f"{source}: neither a saved dataset nor a folder with metadata.csv")
    report = validate(ds, source, collect=collect)
    return ds, report


def _load_folder(path: Path) -> datasets.Dataset:
    """A folder of images with ``metadata.csv``, through datasets' ``imagefolder``. It keeps a row whose image is
    missing or broken (it fails only when that image is decoded), so ``validate`` names every such row."""
    with open(path / "metadata.csv", newline="") as f:
        reader = csv.DictReader(f)
        header, first = reader.fieldnames or [], next(reader, None)
    if first is None:
        raise DataError(f"{path}/metadata.csv: no rows")
    missing = [c for c in ("file_name",) + COLUMNS[:4] if c not in header]
    if missing:
        raise DataError(f"{path}/metadata.csv: row 0, missing columns {missing}")
    features = datasets.Features({c: datasets.Value("string") for c in COLUMNS[:4]} | {"image": datasets.Image()})
    ds = datasets.load_dataset("imagefolder", data_dir=str(path), split="train", features=features)
    return ds.cast_column("image", datasets.Image(decode=False))


@dataclass
class Pools:
    """Reference images: passed images and star images (with their addresses) per image type."""

    passed: dict                 # "CYLN_DST"/"CYLN_RAW" -> [PIL image]
    stars: dict                  # "CYLN_DST"/"CYLN_RAW" -> [(PIL image, "X:c, Y:r")]


def load_pools(folder: str | os.PathLike) -> Pools:
    """Load ``passed_image/{DST,RAW,DST_STAR,RAW_STAR}`` and the star address table from a folder."""
    root = Path(folder)
    root = root / "passed_image" if (root / "passed_image").is_dir() else root
    images = {}
    for kind in POOL_KINDS:
        d = root / kind
        files = sorted(p for p in d.glob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg")) if d.is_dir() else []
        if not files:
            raise DataError(f"{d}: empty pool (no .png/.jpg images)")
        images[kind] = {}
        for p in files:
            try:
                with Image.open(p) as im:
                    images[kind][p.name] = im.convert("RGB")
            except Exception as e:
                raise DataError(f"{p}: unreadable image ({e})") from None
    table = root / STAR_TABLE
    if not table.exists():
        raise DataError(f"{table}: star address table missing")
    stars = {t: [] for t in IMAGE_TYPES}
    with open(table, newline="") as f:
        for i, row in enumerate(csv.DictReader(f)):
            typ = row.get("type")
            if typ not in IMAGE_TYPES:
                raise DataError(f"{table}: row {i}, field 'type': unknown image type {typ!r}")
            kind = typ.split("_")[1] + "_STAR"
            if row.get("file_name") not in images[kind]:
                raise DataError(
                    f"{table}: row {i}, field 'file_name': {row.get('file_name')!r} is not in {root / kind}"
                )
            try:
                Address.parse(row.get("address"))
            except DomainError as e:
                raise DataError(f"{table}: row {i}, field 'address': {e}") from None
            stars[typ].append((images[kind][row["file_name"]], row["address"]))
    for t in IMAGE_TYPES:
        if not stars[t]:
            raise DataError(f"{table}: no star images of type {t}")
    passed = {"CYLN_DST": list(images["DST"].values()), "CYLN_RAW": list(images["RAW"].values())}
    return Pools(passed, stars)


def decode(img) -> Image.Image:
    """A record's image (PIL, PNG bytes, or a datasets ``{bytes, path}`` dict) as an RGB PIL image."""
    return opened(img).convert("RGB")


def opened(img) -> Image.Image:
    """A record's image as Pillow opens it: its size is read, its pixels not yet decoded."""
    if isinstance(img, Image.Image):
        return img
    data = img if isinstance(img, bytes) else (img.get("bytes") or Path(img["path"]).read_bytes())
    return Image.open(io.BytesIO(data))
