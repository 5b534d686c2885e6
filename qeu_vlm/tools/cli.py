"""Headless commands: ``python -m qeu_vlm {main-job,synth,validate,score,replay,train,plot,inspect,plan,notebooks}``.

The settings flags are made from the dataclasses that hold the settings (``Config``, ``SynthConfig``, the planner's
``Setting``), one flag per field, so no flag can drift from what it sets. (TRL's scripts do this with transformers'
``HfArgumentParser``; importing transformers here would come before the backend is chosen.)
``python -m qeu_vlm learn`` is the research's command (``qeu_vlm.research.learn``).
"""
from __future__ import annotations

import argparse
import json
import sys
import types
import typing
from dataclasses import MISSING, fields, replace
from pathlib import Path

from ..config import Config
from ..recipes.quick_replay import QUICK_REPLAY
from ..twin.synth import SynthConfig
from .planner import Setting


def _parse_as(kind):
    """(argparse type, nargs) for a field's type: ``int | None`` -> int; tuples take several values."""
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
        kind = args[0]
    if kind is tuple or typing.get_origin(kind) is tuple:
        return _scalar, "+"
    if kind is dict:
        return json.loads, None
    return kind, None


def _scalar(text: str):
    """A tuple element: a number where it reads as one (an image size), else the text (a shot mode)."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def add_fields(parser, cls, skip=()) -> None:
    """One ``--field-name`` per dataclass field, default None (keep the profile's value)."""
    hints = typing.get_type_hints(cls)
    group = parser.add_argument_group(f"{cls.__name__} fields")
    for f in fields(cls):
        if f.name in skip:
            continue
        kind, nargs = _parse_as(hints[f.name])
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not MISSING else None
        if kind is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=f"(default {default})")
        else:
            group.add_argument(flag, type=kind, nargs=nargs, default=None, metavar=f.name.upper(),
                               help=f"(default {default})")


def given(a, cls, skip=()) -> dict:
    """The fields of ``cls`` set on the command line, as values of the field's type."""
    out = {}
    for f in fields(cls):
        if f.name in skip:
            continue
        value = getattr(a, f.name, None)
        if value is not None:
            out[f.name] = tuple(value) if isinstance(value, list) else value
    return out


def cmd_synth(a):
    import time

    from ..twin.synth import SynthError, write_twin

    t = time.perf_counter()
    try:
        synth = SynthConfig(**given(a, SynthConfig))
    except SynthError as e:
        print(f"synth: {e}", file=sys.stderr)
        return 2
    out = write_twin(synth.generate(), a.out)
    n = synth.n_train + synth.n_test
    dt = time.perf_counter() - t
    print(f"wrote {n} records + pools to {out} in {dt:.1f} s ({n / dt:.0f} records/s)")


def cmd_validate(a):
    from ..data import load_records

    _, report = load_records(a.source, split=a.split, collect=True)
    print(report)
    return 0 if report.ok else 1


def cmd_score(a):
    from ..metrics import score_jsonl

    text = json.dumps(score_jsonl(a.predictions), indent=2)
    if a.out:
        Path(a.out).write_text(text)
    print(text)


def replay_config(a) -> Config:
    """The quick replay (default, ``recipes/quick_replay.py``) or, with ``--full``, the preset's recipe; any Config
    flag overrides either."""
    cfg = Config(run_dir=a.out) if a.full else replace(Config(run_dir=a.out).smoke(), **QUICK_REPLAY)
    return replace(cfg, **given(a, Config, skip=("run_dir", "smoke_mode")))


def cmd_main_job(a):
    """The main job: the pretrained VLM fine-tuned on CPU, inspected before and after (``qeu_vlm.tools.main_job``)."""
    from ..files import OutputFolderError
    from .main_job import MainJobError, run_main_job

    try:
        m = run_main_job(a.out, seed=a.seed, smoke=a.smoke, threads=a.threads)
    except (OutputFolderError, MainJobError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ninterrupted: {a.out} is as it was; the unfinished run is in {a.out}.partial", file=sys.stderr)
        return 130
    print((Path(a.out) / "report.md").read_text().split("\nExamples")[0])
    print(f"report: {Path(a.out) / 'report.html'} (open it in a browser; {m['seconds']:.0f} s in all)")
    return 0 if all(t["met"] for t in m["targets"].values()) or a.smoke else 1


def cmd_replay(a):
    """The quick replay (every step, quickly, with the smoke model); --full: the preset's recipe."""
    from .steps import run_replay

    m = run_replay(replay_config(a))
    print((Path(a.out) / "report.md").read_text())
    print(f"run folder: {a.out} ({m['seconds']} s)")
    return 0


def _run_config(a) -> Config:
    path = Path(a.run) / "config.json"
    if not path.exists():
        raise SystemExit(f"{path}: no config; start the run with 'replay' or notebook 01")
    return Config.load(path)


def cmd_train(a):
    from .steps import train_step

    train_step(_run_config(a))


def cmd_inspect(a):
    from .steps import inspect_step

    print(json.dumps(inspect_step(_run_config(a), a.which, engine=a.engine)["by_shot"], indent=1))


def cmd_plot(a):
    from .steps import plot_step

    print(plot_step(a.run))


def cmd_plan(a):
    """Image tokens, sequence length, estimated peak VRAM and a T4/L4/A100 verdict, before anything runs."""
    from .planner import plan
    from ..presets import PRESETS

    for name in (PRESETS if a.preset == "all" else [a.preset]):
        print(plan(name, **given(a, Setting, skip=("preset",))))


def cmd_notebooks(a):
    from .notebook_runner import run_notebooks

    for name, sec in run_notebooks(a.run, smoke=a.smoke, only=a.only).items():
        print(f"{name}: {sec} s")
    print(f"executed copies: {Path(a.run) / 'executed'}")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="qeu_vlm", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("synth", help="write the synthetic twin")
    s.add_argument("--out", required=True)
    add_fields(s, SynthConfig)
    d = sub.add_parser("main-job", help="the main job: the pretrained VLM fine-tuned on CPU, before and after")
    d.add_argument("--out", default="runs/main_job", help="the run folder (replaced whole when the run finishes)")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--threads", type=int, default=None, help="torch's CPU threads (default: torch's choice)")
    d.add_argument("--smoke", action="store_true", help="the same steps, small (Config.smoke), for a quick check")
    r = sub.add_parser("replay", help="the quick replay: every step of a run on the twin, quickly, with a toy model")
    r.add_argument("--out", required=True, help="the run folder")
    r.add_argument("--full", action="store_true",
                   help="the preset's full recipe (needs a GPU and the Hub) instead of the quick replay")
    add_fields(r, Config, skip=("run_dir", "smoke_mode"))
    v = sub.add_parser("validate", help="validate a dataset source and list every problem")
    v.add_argument("source")
    v.add_argument("--split", default="train")
    sc = sub.add_parser("score", help="score a predictions JSONL")
    sc.add_argument("predictions")
    sc.add_argument("--out")
    for name, help_ in (("train", "train the run's config (resumes from its latest checkpoint)"),
                        ("plot", "learning curves from the run's log_history.json"),
                        ("inspect", "inspect and score the test slice zero- and one-shot")):
        c = sub.add_parser(name, help=help_)
        c.add_argument("--run", required=True, help="run folder holding config.json")
        if name == "inspect":
            c.add_argument("--which", choices=("base", "finetuned"), default="finetuned")
            c.add_argument("--engine", choices=("transformers", "vllm"), default="transformers",
                           help="vllm: batch inspection on vLLM, the adapter served as LoRA (bash "
                                "scripts/install_vllm_stack.sh on a CPU, pip install vllm on a GPU)")
    pl = sub.add_parser("plan", help="estimate tokens and peak VRAM of a preset; T4/L4/A100 verdicts and fixes")
    pl.add_argument("--preset", default="all", help="a preset name, or all")
    add_fields(pl, Setting, skip=("preset",))
    nb = sub.add_parser("notebooks", help="execute the numbered notebooks in order, each in a fresh kernel")
    nb.add_argument("--run", required=True, help="run folder the notebooks share (executed copies go to RUN/executed)")
    nb.add_argument("--full", dest="smoke", action="store_false", help="not smoke mode: the preset's real recipe")
    nb.add_argument("--only", nargs="*", help="notebook names to run, e.g. 01_load_data")
    return p


COMMANDS = {"main-job": cmd_main_job, "synth": cmd_synth, "validate": cmd_validate, "score": cmd_score,
            "replay": cmd_replay, "train": cmd_train, "plot": cmd_plot, "inspect": cmd_inspect,
            "notebooks": cmd_notebooks, "plan": cmd_plan}


def main(argv=None) -> int:
    a = parser().parse_args(argv)
    rc = COMMANDS[a.cmd](a)
    return rc if isinstance(rc, int) else 0


if __name__ == "__main__":
    sys.exit(main())
