"""The reports: the replay's comparison of every scored model of a run folder, in Markdown; the main job's report,
in Markdown and as one self-contained page (a jinja2 template, ``templates/``); and the small tables the notebooks
show (rounded, explained, never raw dicts or reprs)."""
from __future__ import annotations

import json
from pathlib import Path

from ..answer import show_answer
from ..config import Config
from ..metrics import HEADLINE, METRIC_MEANING, NA_NOTE, fmt_metric, markdown_table


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
        "`baseline` is the classic non-VLM inspector (`qeu_vlm.tools.baseline`: each pin compared with its neighbours, "
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


# -- the main job's report: Markdown, and one self-contained page ---------------------------------------------
def _score_rows(m: dict) -> list[list]:
    return [[who, *(fmt_metric(m[key].get(k)) for k in HEADLINE)]
            for who, key in (("before training", "before"), ("after training", "after"),
                             ("classic baseline", "baseline"))]


def _target_lines(m: dict) -> list[str]:
    return [f"{k} >= {t['at_least']}: {fmt_metric(t['value'])} ({'met' if t['met'] else 'NOT met'})"
            for k, t in m["targets"].items()]


def _summary(m: dict) -> str:
    w, threads = m["vision_warmup"], m.get("threads", "?")
    recipe = m.get("settings", {}).get("recipe", {})
    frozen = [*recipe.get("vision_frozen", ()), *recipe.get("vision_frozen_in_fine_tuning", ())]
    return (f"The package's offline pretrained model ({m['parameters'] / 1e6:.1f}M parameters), fine-tuned on "
            f"{m['train_conversations']} conversations of the rendered twin's DST images: a vision warm-up of "
            f"{w['steps']} steps (the defect's pin found in {w['accuracy']} of images), then "
            f"{m['fine_tuning_steps']} fine-tuning steps"
            + (f" with the vision tower's {' and '.join(frozen)} frozen" if frozen else "") + ". "
            f"Scored zero-shot on {m['test_records']} held-out test "
            f"records ({m['test_passed']} passed, {m['test_records'] - m['test_passed']} defective), "
            f"{m['seconds']:.0f} s in all, torch using {threads} thread{'' if threads == 1 else 's'}.")


def main_job_md(m: dict) -> str:
    """The main job's report as Markdown (``report.html`` is the same with its figures)."""
    lines = ["# qeu_vlm main job: a VLM learns to inspect", "", _summary(m), "",
             markdown_table(["model", *HEADLINE], _score_rows(m)), "", "Targets (after training):", "",
             *[f"- {line}" for line in _target_lines(m)], "",
             markdown_table(["stage", "seconds"], list(m["stages_s"].items())), "",
             f"Run {m['date']}, commit {m['commit']}, {m['device']}, seed {m['seed']}.", "",
             "Examples (raw answers as the model wrote them):", ""]
    for e in m["examples"]:
        lines += [f"- record {e['record']} ({e['group']}), true position {e['truth']['position']}:", "",
                  "  ```text", *["  " + x for x in show_answer(e["after"]).splitlines()], "  ```", ""]
    return "\n".join(lines) + "\n"


def main_job_html(m: dict, run: Path) -> str:
    """The main job's report as one self-contained page (``templates/main_job.html``): figures embedded from the run
    folder, every answer escaped."""
    dist = sorted(m["answer_distribution_after"].items(), key=lambda kv: -kv[1])
    return render_page(
        "main_job.html", run, title="qeu_vlm main job: a VLM learns to inspect", summary=_summary(m),
        headline=[k.replace("_", " ") for k in HEADLINE], scores=_score_rows(m),
        targets=[(line, t["met"]) for line, t in zip(_target_lines(m), m["targets"].values())],
        meaning=list(METRIC_MEANING.items()),
        positions=", ".join(f"{'no readable pin' if k in (None, 'None', 'null') else k}: {v}" for k, v in dist),
        warmup=[[e["step"], e["loss"], e["accuracy"]] for e in m["vision_warmup"]["log"]], examples=m["examples"],
        ran=[["date", m["date"]], ["commit", m["commit"]], ["device", m["device"]], ["seed", m["seed"]],
             ["model", f"{m['model']}, {m['parameters']:,} parameters"],
             *[[k, json.dumps(v) if isinstance(v, dict) else v] for k, v in m["settings"].items()]],
        stages=list(m["stages_s"].items()) + [["all", m["seconds"]]])


def render_page(template: str, run: Path, **context) -> str:
    """A page of ``templates/`` rendered with jinja2, autoescaped; ``figure(PATH, ALT)`` embeds the run folder's
    PNG at PATH as a data URI, and the ``answer`` filter shows a model's raw answer (``show_answer``)."""
    import base64

    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("qeu_vlm.tools", "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    env.filters["base64"] = lambda path: base64.b64encode((Path(run) / path).read_bytes()).decode()
    env.filters["answer"] = show_answer
    return env.get_template(template).render(**context)
