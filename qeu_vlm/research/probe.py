"""Watch a learn-profile run learn: ``python -m qeu_vlm.research.probe NAME [FIELD=VALUE ...]``.

The learn profile (``learn.learn_run``) with Config or LearnSettings fields changed on the command line, trained
for a fixed number of steps (no time budget), and every ``--every`` steps ``--n`` held-out DST records are
inspected greedily and scored, so the step at which the judgement is learned shows, not only the end. Two probes
with ``--threads 1`` run side by side on a 2-core machine. Lines starting ``PROBE`` and ``RUN/probe_log.json``
hold the figures.

    python -m qeu_vlm.research.probe balanced balance_judgement=True --threads 1
"""

from __future__ import annotations

import argparse
import ast
import json
import time
from collections import Counter
from pathlib import Path


def main(argv=None):
    import torch
    from transformers import TrainerCallback

    from ..answer import answer_for
    from ..generation import predict
    from ..metrics import score_rows
    from .learn import learn_model, learn_prepared, train_learn
    from .localization import learn_config

    a = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    a.add_argument("name")
    a.add_argument("changes", nargs="*", help="Config fields, e.g. balance_judgement=True")
    a.add_argument("--steps", type=int, default=1100)
    a.add_argument("--every", type=int, default=275)
    a.add_argument("--n", type=int, default=64, help="held-out records inspected at each probe")
    a.add_argument("--threads", type=int, default=2)
    a.add_argument("--root", default="runs/probes")
    a.add_argument("--twin", default="runs/learn/twin", help="the learn profile's twin, shared by every probe")
    args = a.parse_args(argv)
    torch.set_num_threads(args.threads)
    changes = {k: ast.literal_eval(v) for k, v in (c.split("=", 1) for c in args.changes)}
    run = Path(args.root) / args.name
    cfg, lab = learn_config(run, args.twin, max_steps=args.steps, time_budget_s=None, eval_steps=0,
                            save_steps=10**6, **changes)
    cfg = learn_model(cfg, lab)
    p = learn_prepared(cfg, lab)
    test, convs = p.test.select(range(args.n)), p.infer["zero"][:args.n]
    truths, log = [answer_for(r) for r in test], []

    class Probe(TrainerCallback):
        def on_train_begin(self, a_, state, control, processing_class=None, **kw):
            self.processor, self.t0 = processing_class, time.perf_counter()

        def on_step_end(self, a_, state, control, model=None, **kw):
            if state.global_step % args.every:
                return
            model.eval()
            rows = predict(model, self.processor, test, convs, truths, run / "probe.jsonl", batch_size=16,
                           max_new_tokens=cfg.max_new_tokens)
            model.train()
            s = score_rows(rows)["all"]
            e = {"step": state.global_step, "s": round(time.perf_counter() - self.t0),
                 "train_loss": next((h["loss"] for h in reversed(state.log_history) if "loss" in h), None),
                 **{name: None if s[k] is None else round(s[k], 3) for name, k in (   # None: a class absent
                     ("judgement", "judgement_balanced_accuracy"), ("mode", "mode_accuracy"),
                     ("position", "position_exact"))},
                 "distinct_positions": len(Counter(r["parsed"]["position"] for r in rows))}
            log.append(e)
            print("PROBE", json.dumps(e), flush=True)
            (run / "probe_log.json").write_text(json.dumps({"changes": changes, "threads": args.threads,
                                                            "probes": log}, indent=1))

    train_learn(cfg, lab, p, resume=False, callbacks=[Probe()])
    return log


if __name__ == "__main__":
    main()
