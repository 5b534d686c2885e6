"""Inspection quality, measured: what the original posts judged by eye.

An unparseable answer counts as wrong in every metric and is never dropped.

>>> from qeu_vlm.answer import Answer
>>> t = Answer("CYLN_DST", 27, "defective", "X-plus", "X:3, Y:C")
>>> score([t], [t])["all"]["position_exact"]
1.0
"""
from __future__ import annotations

import json
from collections import defaultdict

from .answer import Answer, parse_answer
from .domain import MODES, PASSED, Address

HEADLINE = ("format_valid", "judgement_balanced_accuracy", "mode_accuracy", "position_exact", "within_one_pin",
            "exact_match", "distinct_positions")

# What each headline metric means, for the notebooks and the report: a table is read by people who did not write it.
METRIC_MEANING = {
    "format_valid": "share of answers in the five-line format",
    "judgement_balanced_accuracy": "mean of the recall on passed and on defective parts (0.5: a constant answer)",
    "mode_accuracy": "defective parts only: share with the right bend direction (X-plus, X-minus, Y-plus, Y-minus)",
    "position_exact": "defective parts only: share naming exactly the bent pin",
    "within_one_pin": "defective parts only: share naming the bent pin or one of its neighbours",
    "exact_match": "share of answers whose five lines are all right",
    "distinct_positions": "how many different pins the answers named (1: the model always names the same pin)",
}
NA_NOTE = ("`n/a`: undefined on these records. Judgement balanced accuracy needs both passed and defective parts "
           "among them; the mode and position metrics need a defective part.")


def _ratio(num, den):
    return None if den == 0 else num / den


def _addr(pos):
    try:
        return Address.parse(pos)
    except Exception:
        return None


def _score_group(pairs) -> dict:
    n = len(pairs)
    defective = [(p, t) for p, t in pairs if t.judgement == "defective"]
    passed = [(p, t) for p, t in pairs if t.judgement == PASSED]
    tpr = _ratio(sum(p.judgement == "defective" for p, _ in defective), len(defective))
    tnr = _ratio(sum(p.judgement == PASSED for p, _ in passed), len(passed))
    confusion = {t: {p: 0 for p in MODES + ("unreadable",)} for t in MODES}
    rows = cols = near = exact = 0
    for p, t in defective:
        confusion[t.defect_mode][p.defect_mode or "unreadable"] += 1
        pa, ta = _addr(p.position), _addr(t.position)
        if pa and ta:
            rows += pa.row == ta.row
            cols += pa.col == ta.col
            near += abs(pa.col - ta.col) <= 1 and abs(pa.row_index - ta.row_index) <= 1
            exact += pa == ta
    bal = None if tpr is None or tnr is None else (tpr + tnr) / 2
    return {
        "n": n,
        "n_defective": len(defective),
        "n_passed": len(passed),
        "format_valid": _ratio(sum(p.valid for p, _ in pairs), n),
        "judgement_accuracy": _ratio(sum(p.judgement == t.judgement for p, t in pairs), n),
        "judgement_balanced_accuracy": bal,
        "overkill": None if tnr is None else 1 - tnr,
        "miss": _ratio(sum(p.judgement != "defective" for p, _ in defective), len(defective)),
        "mode_accuracy": _ratio(sum(p.defect_mode == t.defect_mode for p, t in defective), len(defective)),
        "position_exact": _ratio(exact, len(defective)),
        "row_accuracy": _ratio(rows, len(defective)),
        "column_accuracy": _ratio(cols, len(defective)),
        "within_one_pin": _ratio(near, len(defective)),
        "exact_match": _ratio(sum(p.valid and p == t for p, t in pairs), n),
        "mode_confusion": confusion,
        "distinct_positions": len({p.position for p, _ in defective if p.position not in (None, PASSED)}),
    }


def score(predictions, truths, image_types=None, shots=None) -> dict:
    """Score predictions (texts or Answers) against true Answers.

    Returns ``{"all": {...}, "by_type": {type: {...}}, "by_shot": {shot: {...}}}``. ``image_types`` and
    ``shots`` label each pair for the breakdowns; image types default to the truths'.
    """
    preds = [p if isinstance(p, Answer) else parse_answer(p) for p in predictions]
    truths = [t if isinstance(t, Answer) else parse_answer(t) for t in truths]
    if len(preds) != len(truths):
        raise ValueError(f"{len(preds)} predictions for {len(truths)} truths: every record needs one of each")
    image_types = image_types or [t.image_type for t in truths]
    shots = shots or ["zero"] * len(truths)
    pairs = list(zip(preds, truths))
    out = {"all": _score_group(pairs), "by_type": {}, "by_shot": {}}
    for key, labels in (("by_type", image_types), ("by_shot", shots)):
        groups = defaultdict(list)
        for lab, pair in zip(labels, pairs):
            groups[lab].append(pair)
        out[key] = {lab: _score_group(g) for lab, g in sorted(groups.items())}
    return out


def score_rows(rows: list[dict]) -> dict:
    """Score prediction rows (``text``; ``truth`` as text, an answer dict or an Answer; optional ``shot``)."""
    truths = [t if isinstance(t, (str, Answer)) else Answer.from_dict(t) for t in (r["truth"] for r in rows)]
    return score([r["text"] for r in rows], truths, shots=[r.get("shot", "zero") for r in rows])


def score_jsonl(path) -> dict:
    """Score a predictions JSONL whose lines hold ``text`` and ``truth`` (and optionally ``shot``)."""
    rows = []
    with open(path) as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                truth = row["truth"] if isinstance(row["truth"], str) else Answer.from_dict(row["truth"])
                rows.append({"text": row["text"], "truth": truth, "shot": row.get("shot", "zero")})
            except (ValueError, KeyError, TypeError) as e:
                raise ValueError(f"{path}, line {i}: not a prediction record ({e})") from None
    return score_rows(rows)


def fmt_metric(v) -> str:
    """A metric for a table: three decimals, ``n/a`` where it is undefined."""
    return "n/a" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))


def markdown_table(header, rows) -> str:
    """A Markdown table; cells are text (tuples joined, None a dash), ``|`` escaped so no value can break the table.

    >>> print(markdown_table(["setting", "value"], [["image_size", (224, 154)], ["pools", None], ["a|b", 1]]))
    | setting | value |
    |---|---|
    | image_size | 224, 154 |
    | pools | – |
    | a\\|b | 1 |
    """
    def cell(v):
        v = "–" if v is None else ", ".join(str(x) for x in v) if isinstance(v, tuple) else v
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows])
