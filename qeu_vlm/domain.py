"""The connector's vocabulary: pin addresses, image types, defect modes, ``dir`` codes, ``bbox_str``.

Everything else in the package speaks these terms; nothing else parses or formats them.

>>> Address.parse("X:9, Y:C").code
'9C'
>>> parse_dir("23Ym10")
(Address(col=2, row='D'), 'Y-minus')
>>> parse_bbox("Y-minus<loc_108><loc_187><loc_148><loc_239>")
('Y-minus', (108, 187, 148, 239))
"""
from __future__ import annotations

import re
from dataclasses import dataclass

COLS = tuple(range(1, 10))
ROWS = ("U", "C", "D")
IMAGE_TYPES = ("CYLN_RAW", "CYLN_DST")
DEFECT_MODES = ("X-plus", "X-minus", "Y-plus", "Y-minus")
MODES = ("passed",) + DEFECT_MODES
PASSED = "passed"
N_PINS = len(COLS) * len(ROWS)

# Where things are in a labelled dataset image, from the real bboxes (width x height in pixels).
IMAGE_SIZE = (410, 280)
TOP, LEFT = 60, 60                       # label bands: digits on top, letters on the left
COL_X0, COL_PITCH = 87.0, 37.0           # pin centres
ROW_Y = {"U": 125.0, "C": 172.0, "D": 219.0}
STAR_TABLE = "star_addresses.csv"        # in passed_image/: star image file name -> the starred pin's address

# Bend direction in image coordinates (x right, y down). From the real bboxes, a Y-plus bend
# reaches upward (toward row U), so Y-plus is -y in the image.
MODE_VECTORS = {"X-plus": (1, 0), "X-minus": (-1, 0), "Y-plus": (0, -1), "Y-minus": (0, 1)}


def pin_centre(addr: "Address") -> tuple[float, float]:
    """Nominal centre of a pin's base in the 410-px image.

    >>> pin_centre(Address(1, "U"))
    (87.0, 125.0)
    """
    return COL_X0 + (addr.col - 1) * COL_PITCH, ROW_Y[addr.row]


class DomainError(ValueError):
    """A value that is not part of the connector's vocabulary."""


@dataclass(frozen=True, order=True)
class Address:
    """One pin: column 1..9 (X, left to right) and row U/C/D (Y, top to bottom)."""

    col: int
    row: str

    def __post_init__(self):
        if self.col not in COLS or self.row not in ROWS:
            raise DomainError(f"no pin at column {self.col!r}, row {self.row!r} (columns 1-9, rows U/C/D)")

    @property
    def canonical(self) -> str:
        return f"X:{self.col}, Y:{self.row}"

    @property
    def code(self) -> str:
        return f"{self.col}{self.row}"

    @property
    def row_index(self) -> int:
        return ROWS.index(self.row)

    @classmethod
    def from_code(cls, code: str) -> "Address":
        m = re.fullmatch(r"([1-9])([UCD])", code.strip().upper())
        if not m:
            raise DomainError(f"not a pin code: {code!r} (expected e.g. '9C')")
        return cls(int(m[1]), m[2])

    @classmethod
    def parse(cls, text: str) -> "Address":
        """Parse the canonical ``"X:c, Y:r"`` form strictly."""
        m = re.fullmatch(r"X:([1-9]), Y:([UCD])", text.strip()) if isinstance(text, str) else None
        if not m:
            raise DomainError(f"not an address: {text!r} (expected 'X:1..9, Y:U/C/D')")
        return cls(int(m[1]), m[2])


ALL_ADDRESSES = tuple(Address(c, r) for r in ROWS for c in COLS)


def parse_position(text: str) -> Address | None:
    """A dataset ``position``: an Address, or None for ``"passed"``."""
    if text == PASSED:
        return None
    return Address.parse(text)


def format_position(addr: Address | None) -> str:
    return PASSED if addr is None else addr.canonical


def parse_dir(code: str) -> tuple[Address | None, str]:
    """``dir`` code -> (address, mode). ``53X10`` = column 5, row D, X-plus; ``OK`` = passed."""
    if code == "OK":
        return None, PASSED
    m = re.fullmatch(r"([1-9])([123])([XY])(m?)10", code or "")
    if not m:
        raise DomainError(f"not a dir code: {code!r} (expected e.g. '53X10', '11Xm10' or 'OK')")
    addr = Address(int(m[1]), ROWS[int(m[2]) - 1])
    return addr, f"{m[3]}-{'minus' if m[4] else 'plus'}"


def format_dir(addr: Address | None, mode: str) -> str:
    if mode == PASSED:
        return "OK"
    if mode not in DEFECT_MODES or addr is None:
        raise DomainError(f"cannot write a dir code for {addr!r}, {mode!r}")
    axis, sign = mode.split("-")
    return f"{addr.col}{addr.row_index + 1}{axis}{'m' if sign == 'minus' else ''}10"


_BBOX = re.compile(r"([A-Za-z-]+)<loc_(\d+)><loc_(\d+)><loc_(\d+)><loc_(\d+)>")


def parse_bbox(text: str) -> tuple[str, tuple[int, int, int, int]]:
    """``bbox_str`` -> (mode, (x1, y1, x2, y2)) in pixels of the 410-px image."""
    m = _BBOX.fullmatch(text or "") if isinstance(text, str) else None
    if not m:
        raise DomainError(f"malformed bbox_str: {text!r} (expected 'MODE<loc_x1><loc_y1><loc_x2><loc_y2>')")
    mode, box = m[1], tuple(int(v) for v in m.groups()[1:])
    if mode not in MODES:
        raise DomainError(f"unknown defect mode {mode!r} in bbox_str (known: {', '.join(MODES)})")
    if not (box[0] < box[2] and box[1] < box[3]):
        raise DomainError(f"empty box in bbox_str: {text!r} (need x1<x2 and y1<y2)")
    return mode, box


def format_bbox(mode: str, box) -> str:
    return mode + "".join(f"<loc_{int(v)}>" for v in box)


def check_record(rec: dict) -> None:
    """Raise DomainError naming the field when a record's values are malformed or disagree."""
    if rec.get("type") not in IMAGE_TYPES:
        raise DomainError(f"type: unknown image type {rec.get('type')!r} (known: {', '.join(IMAGE_TYPES)})")
    try:
        addr = parse_position(rec.get("position"))
    except DomainError as e:
        raise DomainError(f"position: {e}") from None
    try:
        bmode, _ = parse_bbox(rec.get("bbox_str"))
    except DomainError as e:
        raise DomainError(f"bbox_str: {e}") from None
    try:
        daddr, dmode = parse_dir(rec.get("dir"))
    except DomainError as e:
        raise DomainError(f"dir: {e}") from None
    if (daddr, dmode) != (addr, bmode):
        raise DomainError(
            f"dir/position/bbox_str disagree: dir {rec.get('dir')!r} says {format_position(daddr)} {dmode}, "
            f"position says {rec.get('position')!r}, bbox_str mode is {bmode!r}"
        )


def describe(records) -> dict:
    """Counts of a split by image type and defect mode, and its distinct positions (images never decoded).

    >>> describe([{"type": "CYLN_DST", "bbox_str": "passed<loc_1><loc_2><loc_3><loc_4>", "position": "passed"}])["rows"]
    1
    """
    if hasattr(records, "select_columns"):          # a datasets.Dataset: leave the images undecoded
        records = records.select_columns(["type", "bbox_str", "position"])
    recs = [{k: r[k] for k in ("type", "bbox_str", "position")} for r in records]
    return {"rows": len(recs), "types": {t: sum(r["type"] == t for r in recs) for t in ("CYLN_DST", "CYLN_RAW")},
            "modes": {m: sum(r["bbox_str"].startswith(m) for r in recs) for m in MODES},
            "positions": len({r["position"] for r in recs})}
