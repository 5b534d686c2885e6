"""Localisation attempts on CPU: ``python -m qeu_vlm.research.localization ATTEMPT [ATTEMPT ...]``.

Each attempt is the learn profile (``learn.learn_run``) with one change, trained on the same twin for the same
CPU budget and scored on the same held-out DST records. Results accumulate in
``runs/localization/results.json``, and the table is printed for ``benchmarks/RESULTS.md``, failures included.
"""
from __future__ import annotations

import argparse
import json
from datetime import date
from pathlib import Path

from ..metrics import fmt_metric, markdown_table
from ..recipes.localization import ATTEMPTS


def learn_config(run_dir, twin: str, **changes):
    """The learn profile's ``(Config, LearnSettings)`` on an existing learn twin (``TWIN/dataset``,
    ``TWIN/drive``), with ``changes`` (``tiny_overrides`` are added to the profile's own)."""
    from .learn import learn_run

    return learn_run(run_dir, data=f"{twin}/dataset", pools=f"{twin}/drive", **changes)


def main(argv=None):
    from .learn import run_learn

    a = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    a.add_argument("attempts", nargs="+", choices=list(ATTEMPTS) + ["table"])
    a.add_argument("--root", default="runs/localization")
    a.add_argument("--twin", default="runs/learn/twin", help="the learn profile's twin, shared by every attempt")
    args = a.parse_args(argv)
    root = Path(args.root)
    root.mkdir(parents=True, exist_ok=True)
    results_path = root / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    for name in args.attempts:
        if name == "table":
            continue
        what, changes = ATTEMPTS[name]
        cfg, lab = learn_config(root / name, args.twin, **changes)
        m = run_learn(cfg, lab, ablation=False, baseline=False)["learn"]
        results[name] = {"what": what, "date": str(date.today()), "train_s": m["train"]["runtime_s"],
                         "steps": m["train"]["steps"], "scores": {k: m["scores"][k] for k in (
                             "format_valid", "judgement_balanced_accuracy", "mode_accuracy", "position_exact",
                             "within_one_pin", "distinct_positions")}}
        results_path.write_text(json.dumps(results, indent=1))
    cols = ("format_valid", "judgement_balanced_accuracy", "mode_accuracy", "position_exact", "within_one_pin",
            "distinct_positions")
    print(markdown_table(["attempt", "change", "steps", "train s", *cols],
                         [[name, r["what"], r["steps"], r["train_s"], *(fmt_metric(r["scores"][k]) for k in cols)]
                          for name, r in results.items()]))

if __name__ == "__main__":
    main()
