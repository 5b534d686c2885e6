"""The five-line answer: the only place that writes it and reads it back.

>>> a = Answer("CYLN_DST", 27, "defective", "Y-minus", "X:2, Y:D")
>>> print(format_answer(a))
- image type->CYLN_DST
- quantity of pins->27 pcs
- your judgement->defective
- defect mode->Y-minus
- defect position->X:2, Y:D
>>> parse_answer(format_answer(a)) == a
True
>>> parse_answer("• Image Type: cyln_raw\\n* number of pins -> 27 pins\\nlocation 0C").valid
False
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from .domain import DEFECT_MODES, IMAGE_TYPES, N_PINS, PASSED, Address, DomainError, parse_bbox

FIELDS = ("image_type", "pin_count", "judgement", "defect_mode", "position")
_LABELS = {
    "image_type": "image type",
    "pin_count": "quantity of pins",
    "judgement": "your judgement",
    "defect_mode": "defect mode",
    "position": "defect position",
}
# What models (and earlier prompt variants) write for each field's label.
_LABEL_RE = {
    "image_type": r"image\s*type|type\s*of\s*image",
    "pin_count": r"(?:quantity|number|count)\s*of\s*pins|pin\s*count",
    "judgement": r"(?:your\s*)?judge?ment",
    "defect_mode": r"defect\s*mode|mode\s*of\s*defect",
    "position": r"(?:defect\s*)?position(?:\s*of\s*(?:defect|star))?|address|location",
}


@dataclass(eq=True)
class Answer:
    image_type: str | None = None
    pin_count: int | None = None
    judgement: str | None = None
    defect_mode: str | None = None
    position: str | None = None
    valid: bool = True
    problems: list = field(default_factory=list, compare=False)

    def __eq__(self, other):
        if not isinstance(other, Answer):
            return NotImplemented
        return all(getattr(self, f) == getattr(other, f) for f in FIELDS + ("valid",))

    def to_dict(self) -> dict:
        return {f: getattr(self, f) for f in FIELDS + ("valid", "problems")}

    @classmethod
    def from_dict(cls, d: dict) -> "Answer":
        """The five fields of a saved answer (``to_dict`` output, a predictions JSONL's ``truth``)."""
        return cls(**{f: d[f] for f in FIELDS})


def answer_for(record: dict) -> Answer:
    """The true answer of a dataset record (``type``, ``position``, ``bbox_str``)."""
    mode, _ = parse_bbox(record["bbox_str"])
    return Answer(
        image_type=record["type"],
        pin_count=N_PINS,
        judgement=PASSED if mode == PASSED else "defective",
        defect_mode=mode,
        position=record["position"],
    )


def format_answer(a: Answer) -> str:
    pins = "" if a.pin_count is None else f"{a.pin_count} pcs"
    values = [a.image_type or "", pins, a.judgement or "", a.defect_mode or "", a.position or ""]
    return "\n".join(f"- {_LABELS[f]}->{v}" for f, v in zip(FIELDS, values))


def format_star_answer(image_type: str, address: str) -> str:
    """The one-shot teaching turn's answer, as the original experiments wrote it."""
    return f"- image type->{image_type}\n- quantity of pins->{N_PINS} pins\n- position of star->{address}"


def _normalise(text: str) -> str:
    # NFKC folds full-width letters, digits, colons and arrows' neighbours into ASCII.
    text = unicodedata.normalize("NFKC", text)
    return text.replace("→", "->").replace("⇒", "->").replace("＞", ">")


def read_position(text: str) -> str | None:
    """A position in any form models write -> canonical ``"X:c, Y:r"``, ``"passed"``, or None.

    Accepts ``X:9, Y:C``, ``X:9,Y:C``, ``9C``, ``C9``, ``location 9C``, ``(9, C)``. An impossible
    address (``X:0``, ``Y:N``, ``X:middle``) is None: it is never coerced to a real pin.
    """
    t = _normalise(text).strip().strip(".").strip()
    if re.fullmatch(r"(?i)passed|none|n/?a|-", t):
        return PASSED if t.lower() == PASSED else None
    t = re.sub(r"(?i)^(?:location|address|pin|position)\s*[:=]?\s*", "", t)
    pats = [
        r"(?i)X\s*[:=]\s*(?P<c>\w+)\s*[,;/ ]\s*Y\s*[:=]\s*(?P<r>\w+)",
        r"(?i)\(\s*(?P<c>\w+)\s*,\s*(?P<r>\w+)\s*\)",
        r"(?i)(?P<c>\d+)\s*(?P<r>[A-Z])",
        r"(?i)(?P<r>[A-Z])\s*(?P<c>\d+)",
    ]
    for p in pats:
        m = re.fullmatch(p, t)
        if m:
            try:
                return Address(int(m["c"]), m["r"].upper()).canonical
            except (ValueError, DomainError):
                return None
    return None


def parse_answer(text) -> Answer:
    """Read a model's answer. Never raises; ``valid`` only when all five fields are well-formed."""
    a = Answer(valid=False)
    if not isinstance(text, str):
        a.problems.append(f"not text: {type(text).__name__}")
        return a
    seen = {}
    for raw in _normalise(text).splitlines():
        line = re.sub(r"^\s*(?:[-*•・●▪+]|\d+[.)])\s*", "", raw).strip()
        for f, lab in _LABEL_RE.items():
            m = re.match(rf"(?i)^(?:{lab})\s*(?:->|=>|:|=|-)\s*(.*)$", line)
            if m and f not in seen:
                seen[f] = m[1].strip()
                break
    for f in FIELDS:
        if f not in seen:
            a.problems.append(f"missing {_LABELS[f]!r}")
            continue
        v = seen[f]
        if f == "image_type":
            val = v.upper().replace(" ", "_")
            ok = val in IMAGE_TYPES
        elif f == "pin_count":
            m = re.fullmatch(r"(?i)(\d+)\s*(?:pcs?|pins?|pieces)?\.?", v)
            val, ok = (int(m[1]), True) if m else (None, False)
        elif f == "judgement":
            val = v.lower().rstrip(".")
            ok = val in (PASSED, "defective")
        elif f == "defect_mode":
            m = re.fullmatch(r"(?i)([XY])\s*[-_ ]?\s*(plus|minus)\.?|(passed)", v)
            val = (f"{m[1].upper()}-{m[2].lower()}" if m[1] else PASSED) if m else None
            ok = val is not None
        else:
            val = read_position(v)
            ok = val is not None
        if ok:
            setattr(a, f, val)
        else:
            a.problems.append(f"unreadable {_LABELS[f]}: {v!r}")
    if a.judgement and a.defect_mode and (a.judgement == PASSED) != (a.defect_mode == PASSED):
        a.problems.append(f"judgement {a.judgement!r} contradicts defect mode {a.defect_mode!r}")
    a.valid = not a.problems
    return a


def show_answer(text: str | None) -> str:
    """A model's answer as a reader should see it: an empty, blank or one-character answer described in words
    rather than shown as blank space or as a run of dashes that Markdown would draw as a line.

    >>> show_answer("\\n" * 48), show_answer(""), show_answer("-" * 48), show_answer("- image type->CYLN_DST\\n")
    ('(48 newlines)', '(empty)', "(48 × '-')", '- image type->CYLN_DST')
    """
    if not text:
        return "(empty)"
    if not text.strip():
        kinds = {"\n": "newlines", " ": "spaces", "\t": "tabs"}
        return f"({len(text)} {kinds[text[0]]})" if len(set(text)) == 1 and text[0] in kinds else \
            f"({len(text)} whitespace characters)"
    body = text.strip()
    if len(set(body)) == 1 and len(body) > 3:
        return f"({len(body)} × {body[0]!r})"
    return body


__all__ = ["Answer", "answer_for", "format_answer", "format_star_answer", "parse_answer", "read_position",
           "show_answer", "DEFECT_MODES"]
