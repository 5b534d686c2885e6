"""The replay's report: the comparison of every scored model of a run folder, in Markdown; and the small tables
and answer views the notebooks show (rounded, explained, never raw dicts or reprs)."""
from __future__ import annotations

import json
from pathlib import Path

from ..config import Config
from ..metrics import fmt_metric

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


def markdown_table(header, rows) -> str:
    """A Markdown table; cells are text, with ``|`` escaped so no value can break the table."""
    def cell(v):
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows])


def comparison_table(run, explain: bool = True) -> str:
    """Markdown table of every ``metrics_*.json`` in the run folder (base, finetuned, ...), by shot mode, with
    the number of records each row scored; ``explain``: the ``n/a`` note under it when one occurs."""
    rows = []
    for path in sorted(Path(run).glob("metrics_*.json"), key=lambda p: (p.stem != "metrics_base", p.stem)):
        for shot, s in json.loads(path.read_text())["by_shot"].items():
            counts = f"{s['n']} ({s['n_passed']} passed)" if "n_passed" in s else s.get("n", "")
            rows.append([path.stem[8:], shot, counts, *(fmt_metric(s[k]) for k in HEADLINE)])
    table = markdown_table(["model", "shot", "records", *HEADLINE], rows)
    if explain and any("n/a" in r for r in rows):
        table += "\n\n" + NA_NOTE
    return table


def metric_glossary() -> str:
    """The headline metrics, one line each, as Markdown."""
    return "\n".join(f"- `{k}`: {v}" for k, v in METRIC_MEANING.items())


def answers_seen_table(scores: dict) -> str:
    """The positions the answers named most often, with ``None`` spelled out: an answer with no readable
    position line (empty, garbled, or not in the five-line format)."""
    seen = scores.get("answers_seen", {})
    total = sum(scores.get("answer_distribution", seen).values()) or 1
    rows = [["(no readable position)" if k in (None, "None", "null") else k, v, f"{v / total:.0%}"]
            for k, v in seen.items()]
    return markdown_table(["position answered", "answers", "share"], rows)


def loss_table(run) -> str:
    """Train and eval loss by step from the run folder's ``log_history.json``, three decimals, one row a step."""
    log = json.loads((Path(run) / "log_history.json").read_text())
    by_step: dict = {}
    for h in log:
        for k in ("loss", "eval_loss"):
            if k in h:
                by_step.setdefault(h["step"], {})[k] = h[k]
    rows = [[s, f"{v['loss']:.3f}" if "loss" in v else "", f"{v['eval_loss']:.3f}" if "eval_loss" in v else ""]
            for s, v in sorted(by_step.items())]
    return markdown_table(["step", "train loss", "eval loss"], rows)


def _examples(run: Path) -> str:
    """The first answer of each predictions file, in a fenced block: shown as text, never as Markdown."""
    out = []
    for path in sorted(run.glob("predictions_*_*.jsonl")):
        first = path.read_text().split("\n", 1)[0]
        if first:
            out.append(f"{path.stem[12:]}: first answer\n\n```text\n{show_answer(json.loads(first)['text'])}\n```")
    return "\n\n".join(out)


def report(m: dict, cfg: Config) -> str:
    run = Path(cfg.run_dir)
    lines = [
        f"# qeu_vlm replay: {m['model']} ({m['backend']} backend)",
        "",
        f"{m['train_records']} training conversations, {m['eval_records']} eval, {m['test_records']} test records "
        f"inspected zero-shot and one-shot (so each model row below scores {m['test_records']} answers); "
        f"{m['seconds']} s in all.",
        "",
        comparison_table(run),
        "",
        metric_glossary(),
        "",
        "`baseline` is the classic non-VLM inspector (`qeu_vlm.tools.baseline`: DST blob / RAW aligned difference, "
        "fitted on the training split): the bar a fine-tuned VLM must clear. By image type: "
        + "; ".join(
            f"{t}: judgement {fmt_metric(s['judgement_accuracy'])}, position {fmt_metric(s['position_exact'])}"
            for t, s in m["baseline"]["by_type"].items()
        )
        + ".",
        "",
        "Most frequent positions in the fine-tuned model's answers:",
        "",
        answers_seen_table(m["finetuned"] if "finetuned" in m else {"answers_seen": m["answers_seen"]}),
        "",
        _examples(run),
        "",
        "![samples](samples.png)",
        "",
        "![learning curves](learning_curves.png)",
        "",
        "![before](evaluation_base.png)",
        "",
        "![after](evaluation_finetuned.png)",
        "",
        "![one-shot example](example_finetuned_one.png)",
        "",
    ]
    if cfg.model == "tiny":
        lines.insert(2, "**CPU smoke figures from a tiny randomly initialised model: they show the pipeline runs, "
                        "not how well a real VLM inspects.**\n")
    return "\n".join(lines)


def data_table(splits: dict, reports: dict) -> str:
    """One row per split: records, problems found, image types, defect modes and distinct positions (the counts
    of ``domain.describe``); the split's source is left out, so no machine path lands in a notebook."""
    from ..domain import MODES, describe

    rows = []
    for name, records in splits.items():
        d = describe(records)
        rows.append([name, d["rows"], len(reports[name].problems), d["types"]["CYLN_DST"], d["types"]["CYLN_RAW"],
                     *(d["modes"][m] for m in MODES), d["positions"]])
    return markdown_table(["split", "records", "problems", "DST", "RAW", *MODES, "distinct positions"], rows)


def smoke_notice(cfg: Config) -> str:
    """What is real and what is a toy in a smoke run, as Markdown for the top of every notebook; "" otherwise."""
    if not cfg.smoke_mode:
        return ""
    return (f"> **Smoke mode: real machinery, toy model.** Real here: the pipeline, the data handling (the "
            f"synthetic twin, validated like the real datasets), the conversations, training, inspection and "
            f"scoring, the same code a real run uses. A toy: the model, a tiny randomly initialised VLM "
            f"(`{cfg.model}`) trained {cfg.max_steps} steps on {cfg.n_train} records on the CPU, standing in for "
            f"`{cfg.real_model or 'a preset'}`. Its answers are noise, so its scores are 0: they show that the "
            f"measuring works, not how well a VLM inspects. `SMOKE = False` on a GPU runs the real thing.\n\n")


# -- the self-contained HTML page: every value escaped, every figure embedded, so it opens anywhere -------------
_CSS = """body{font:15px/1.45 system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}
th{background:#f2f2f2}pre{background:#f7f7f7;border:1px solid #ddd;padding:.5em;white-space:pre-wrap;margin:.3em 0}
img{max-width:100%}.examples{display:grid;grid-template-columns:repeat(auto-fill,minmax(330px,1fr));gap:1em}
.met{color:#17702b;font-weight:600}.missed{color:#b00020;font-weight:600}h1{font-size:1.5em}"""


def html_escape(value) -> str:
    import html

    return html.escape(str(value), quote=True)


def html_table(header, rows) -> str:
    """An HTML table; every cell escaped, so no value (an answer, a path) can become markup."""
    head = "".join(f"<th>{html_escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html_escape(v)}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def html_image(path, alt: str) -> str:
    """A PNG embedded as a data URI: the page needs no file beside it."""
    import base64

    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<img alt="{html_escape(alt)}" src="data:image/png;base64,{data}">'


def html_answer(text: str | None) -> str:
    """A model's raw answer as it was, in a preformatted block (``show_answer`` names an empty one)."""
    return f"<pre>{html_escape(show_answer(text))}</pre>"


def html_page(title: str, parts: list[str]) -> str:
    """The page around HTML ``parts`` (made with the helpers above, or escaped text in tags)."""
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html_escape(title)}</title>'
            f"<style>{_CSS}</style></head><body><h1>{html_escape(title)}</h1>\n" + "\n".join(parts)
            + "\n</body></html>\n")
