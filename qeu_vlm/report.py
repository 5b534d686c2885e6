"""The replay's report: the comparison of every scored model of a run folder, in Markdown."""
from __future__ import annotations

import json
from pathlib import Path

from .config import Config
from .metrics import fmt_metric

HEADLINE = ("format_valid", "judgement_balanced_accuracy", "mode_accuracy", "position_exact", "within_one_pin",
            "exact_match", "distinct_positions")


def comparison_table(run) -> str:
    """Markdown table of every ``metrics_*.json`` in the run folder (base, finetuned, ...), by shot mode."""
    lines = ["| model | shot | " + " | ".join(HEADLINE) + " |", "|---|---|" + "---|" * len(HEADLINE)]
    for path in sorted(Path(run).glob("metrics_*.json"), key=lambda p: (p.stem != "metrics_base", p.stem)):
        for shot, s in json.loads(path.read_text())["by_shot"].items():
            lines.append(f"| {path.stem[8:]} | {shot} | " + " | ".join(fmt_metric(s[k]) for k in HEADLINE) + " |")
    return "\n".join(lines)


def report(m: dict, cfg: Config) -> str:
    lines = [
        f"# qeu_vlm replay: {m['model']} ({m['backend']} backend)",
        "",
        f"{m['train_records']} training conversations, {m['eval_records']} eval, {m['test_records']} test records "
        f"inspected zero-shot and one-shot; {m['seconds']} s in all.",
        "",
        comparison_table(cfg.run_dir),
        "",
        "`baseline` is the classic non-VLM inspector (`qeu_vlm.baseline`: DST blob / RAW aligned difference, "
        "fitted on the training split): the bar a fine-tuned VLM must clear. By image type: "
        + "; ".join(
            f"{t}: judgement {fmt_metric(s['judgement_accuracy'])}, position {fmt_metric(s['position_exact'])}"
            for t, s in m["baseline"]["by_type"].items()
        )
        + ".",
        "",
        "Most frequent predicted positions (finetuned): " + json.dumps(m["answers_seen"]),
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
