"""GPU benchmark: every GPU figure of the issue in one run of at most 9 minutes, into one JSON + Markdown table.

    python -m benchmarks.gpu                      # on a GPU machine: default preset, Unsloth vs hf, T4 cap, notebooks
    python -m benchmarks.gpu --wheels             # the wheels to bring to a GPU machine without internet
    python -m benchmarks.gpu --tiny --steps 2     # CPU check: the tiny model, end to end
    python -m benchmarks.gpu --shrink --presets qwen3-vl-2b,llama-3.2-11b-vision,pixtral-12b --backends hf --steps 1

What it measures, into ``OUT/gpu_results.json`` and ``OUT/gpu_results.md``:

- Unsloth vs transformers + peft + TRL ("hf") at equal settings (the preset's image cap, batch, accumulation,
  4-bit, LoRA r 16, gradient checkpointing): s/step, samples/s and tokens/s over the steps after the first
  (the first compiles and warms up), zero- and one-shot. Target: Unsloth >= 1.8x hf.
- The peak reserved GPU memory of each run, beside the planner's estimate (``qeu_vlm.tools.planner``). Target: the
  planner within 15% of each measured peak.
- The one-shot run of each T4 preset with a T4's memory (the process capped at 15 GiB, fp16 as a T4 has no bf16).
  Target for the default preset: it fits, peak <= 15 GiB.
- Notebooks 03 and 05, executed end to end, not in smoke mode, on the random-weight real-size default preset.
- With two GPUs: the first preset trained zero-shot (hf) by two processes, ``accelerate launch`` with
  ``configs/accelerate/ddp.yaml`` through ``python -m qeu_vlm train``, its samples/s beside one GPU's (the trainer's
  figures for both, first step included); with fewer GPUs the row is printed unmeasured.

Each run is its own process: importing Unsloth patches transformers, peft and TRL for the whole process, so an hf
row measured in a process that imported Unsloth would be measured patched. The parent never imports torch,
transformers or Unsloth; it starts ``python -m benchmarks.gpu --child SPEC`` for the device probe, the model build,
each (preset, shot, backend) run and the notebooks, and stops starting runs that would not fit in ``--budget-s``.

Nothing is downloaded: each preset's model is built from its real architecture (``qeu_vlm.offline.random_models``) with
random weights, once, with the offline tokenizer and processor. ``--shrink`` builds the same families at toy size
and ``--tiny`` uses the tiny offline model: CPU checks of every path. Figures that do not exist (no GPU, toy
models, a run that failed) are written "unmeasured", never estimated.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import date
from importlib.metadata import PackageNotFoundError, version
from importlib.util import find_spec
from pathlib import Path

from qeu_vlm.presets import DEFAULT_PRESET, PRESETS

ROOT = Path(__file__).resolve().parent.parent
GIB = 2**30
T4_GIB = 15.0                    # a T4's 16 GB less the CUDA context, as the planner counts it
TARGETS = {"ratio": 1.8, "t4": T4_GIB, "planner": 15.0}
NOTEBOOKS = ["03_finetune", "05_inspect"]

# The wheels the benchmark needs beyond torch, transformers, peft and accelerate (and what those four pull):
# what it imports (trl, datasets, unsloth, unsloth_zoo, bitsandbytes, xformers, cut_cross_entropy, torchao,
# papermill, ipykernel, nbformat, matplotlib, scikit-image, scipy, pillow, torchvision) and their dependency
# closure, less the four's closure, read off the Colab lane's metadata (/tmp/colab-lane, 2026-11-24). Versions come
# from requirements-colab.txt. triton is left out: a CUDA torch wheel pulls the triton it was built with.
# torchvision and xformers are built against one torch release, so they are matched to it (``matched``).
WHEELS = """
aiohappyeyeballs aiohttp aiosignal asttokens attrs bitsandbytes charset-normalizer comm contourpy cut-cross-entropy
cycler datasets debugpy diffusers dill docstring-parser einops entrypoints executing fastjsonschema fonttools
frozenlist hf-transfer imageio importlib-metadata ipykernel ipython ipython-pygments-lexers jedi json5 jsonschema
jsonschema-specifications jupyter-client jupyter-core kiwisolver lazy-importer lazy-loader matplotlib
matplotlib-inline msgspec multidict multiprocess nbclient nbformat nest-asyncio nest-asyncio2 pandas papermill parso
pexpect pillow platformdirs prompt-toolkit propcache protobuf ptyprocess pure-eval pyarrow pyparsing python-dateutil
pyzmq referencing requests rpds-py scikit-image scipy sentencepiece stack-data structlog tenacity tifffile torchao
tornado traitlets trl typeguard tyro tzdata unsloth unsloth-zoo urllib3 wcwidth wheel xformers xxhash yarl zipp
""".split()
GIVEN = ("torch", "transformers", "peft", "accelerate")
# import names of what the code imports, checked with find_spec: an installed distribution can still not import
IMPORTS = ("torch", "transformers", "peft", "accelerate", "trl", "datasets", "unsloth", "unsloth_zoo", "bitsandbytes",
           "xformers", "cut_cross_entropy", "torchao", "torchvision", "papermill", "ipykernel", "nbformat",
           "matplotlib", "skimage", "scipy", "PIL")
# xformers per torch minor, as the notebooks' install cell pins it (requirements-colab.txt's for newer torch)
XFORMERS = {"2.8": "0.0.32.post2", "2.9": "0.0.33.post1", "2.10": "0.0.34"}
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_24_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path: Path = ROOT / "requirements-colab.txt") -> dict:
    """``{normalised name: version}`` of requirements-colab.txt."""
    out = {}
    for line in path.read_text().splitlines():
        if "==" in line and not line.lstrip().startswith("#"):
            name, ver = line.split("#")[0].strip().split("==")
            out[_norm(name)] = ver
    return out


def matched(torch_version: str) -> dict:
    """torchvision and xformers for a torch release (torchvision 0.(minor + 15) goes with torch 2.minor)."""
    major, minor, patch = re.match(r"(\d+)\.(\d+)\.?(\d*)", torch_version).groups()
    tv = f"0.{int(minor) + 15}.{patch or 0}" if major == "2" else None
    return {"torchvision": tv, "xformers": XFORMERS.get(f"{major}.{minor}", pins()["xformers"])}


def wheel_lines(torch_version: str | None = None) -> list[str]:
    """``name==version`` for every wheel in ``WHEELS`` plus torchvision, matched to ``torch_version``."""
    torch_version = torch_version or _installed("torch") or pins_torch()
    pinned, match = pins(), matched(torch_version)
    lines = [f"{n}=={match['xformers'] if n == 'xformers' else pinned[_norm(n)]}" for n in WHEELS]
    if match["torchvision"]:
        lines.append(f"torchvision=={match['torchvision']}")
    return sorted(lines, key=lambda s: _norm(s.split("==")[0]))


def pins_torch() -> str:
    """The torch release requirements-colab.txt was resolved with (its header says so)."""
    return re.search(r"torch==([\d.]+)", (ROOT / "requirements-colab.txt").read_text()).group(1)


def download_command(py: str = "3.12") -> str:
    plats = " ".join(f"--platform {p}" for p in PLATFORMS)
    return (f"pip download --no-deps --only-binary=:all: {plats} --python-version {py} --implementation cp "
            f"--abi cp{py.replace('.', '')} -d wheels -r wheels.txt")


def wheels_text(torch_version: str | None = None) -> str:
    tv = (torch_version or _installed("torch") or pins_torch()).split("+")[0]
    pinned = pins()
    head = [f"# benchmarks/gpu.py: the wheels it needs beyond {', '.join(GIVEN)} (and their dependencies);",
            f"# versions from requirements-colab.txt, torchvision and xformers matched to torch {tv} (--torch).",
            "# Tested with " + ", ".join(f"{n}=={pinned[n]}" for n in GIVEN[1:]) + f", torch=={pins_torch()}.",
            "# On a machine with internet (CUDA torch from PyPI: torchvision from PyPI matches it):",
            "#   python -m benchmarks.gpu --wheels > wheels.txt",
            f"#   {download_command()}",
            "# On the GPU machine (no internet), in the repository:",
            "#   pip install --no-index --no-deps --find-links wheels -r wheels.txt && pip install --no-deps -e .",
            "#   python -m benchmarks.gpu --out runs/gpu_bench"]
    return "\n".join(head + wheel_lines(tv)) + "\n"


def _installed(dist: str) -> str | None:
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def missing_wheels() -> dict:
    """What is not installed (``missing``), not importable (``not_importable``), or at another version than pinned
    (``other_versions``), checked without importing anything."""
    pinned = pins()
    names = list(GIVEN) + WHEELS + ["torchvision"]
    missing = [n for n in names if _installed(n) is None]
    dist = {"PIL": "pillow", "skimage": "scikit-image"}
    broken = [m for m in IMPORTS if find_spec(m) is None and _norm(dist.get(m, m)) not in map(_norm, missing)]
    other = {n: f"{_installed(n)} (pinned {pinned[_norm(n)]})" for n in WHEELS
             if n not in missing and _norm(n) in pinned and _installed(n) != pinned[_norm(n)]}
    return {"missing": missing, "not_importable": broken, "other_versions": other}


# -- the children ----------------------------------------------------------------------------------------------
def _why(e: BaseException) -> str:
    first = (str(e).strip().splitlines() or [""])[0]
    return f"{type(e).__name__}: {first[:400]}"


def _probe(spec: dict) -> dict:
    import torch

    cuda = torch.cuda.is_available()
    out = {"cuda": cuda, "gpus": torch.cuda.device_count(), "torch": torch.__version__,
           "cuda_version": torch.version.cuda,
           "device": f"CPU ({os.cpu_count()} cores), no CUDA GPU"}
    if cuda:
        props = torch.cuda.get_device_properties(0)
        out |= {"device": props.name, "total_gib": round(props.total_memory / GIB, 1),
                "capability": f"{props.major}.{props.minor}"}
    return out


def _build(spec: dict) -> dict:
    """Each preset's random model, once per ``--out`` folder (transformers only: Unsloth is never imported here)."""
    import torch

    from qeu_vlm.offline.random_models import build_random

    out = {"models": {}, "errors": {}, "seconds": {}}
    for preset in spec["presets"]:
        folder = Path(spec["root"]) / f"model-{preset}{'-toy' if spec['shrink'] else ''}"
        t = time.perf_counter()
        try:
            if not (folder / "config.json").exists():
                build_random(preset, folder, PRESETS[preset].max_pixels, shrink=spec["shrink"])
            out["models"][preset] = str(folder)
        except (NotImplementedError, ImportError) as e:       # e.g. Pixtral's processor needs torchvision
            out["errors"][preset] = f"not built: {(str(e).strip().splitlines() or [''])[0]}"
        out["seconds"][preset] = round(time.perf_counter() - t, 1)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    return out


def run_config(spec: dict):
    """The run's ``Config``: equal for both backends; the tiny model as ``Config.smoke()`` has it."""
    from qeu_vlm.config import Config

    one = spec["shot"] == "one"
    base = Config(run_dir=spec["run"], n_train=16, n_test=4, n_inspect=2, n_eval=0, eval_steps=0,
                  save_steps=10_000, max_steps=spec["steps"], backend=spec["backend"], logging_steps=1,
                  one_shot_first=16 if one else 0)
    if spec["model"] == "tiny":
        return replace(base.smoke(), smoke_mode=False, run_dir=spec["run"], n_train=16, n_test=4, n_eval=0,
                       eval_steps=0, n_inspect=2, save_steps=10_000, max_steps=spec["steps"],
                       backend=spec["backend"], one_shot_first=base.one_shot_first)
    p = PRESETS[spec["preset"]]
    # toy models check the paths, batch collation included; accumulating more micro-batches checks nothing more
    return replace(base, model=spec["model"], max_pixels=p.max_pixels, max_length=p.max_length,
                   batch_size=p.batch_size, grad_accum=1 if spec.get("shrink") else p.grad_accum,
                   load_in_4bit=p.load_in_4bit)


def _t4_before_import() -> None:
    """A T4's memory and precision: the allocator capped at 15 GiB, and no bf16 (so fp16, as on a T4). Before
    Unsloth is imported: it reads bf16 support when imported and wraps ``torch.cuda.is_bf16_supported``."""
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError("T4 emulation needs a CUDA GPU (the cap is a CUDA allocator limit)")
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(min(1.0, T4_GIB * GIB / total))
    torch.cuda.is_bf16_supported = _no_bf16


def _no_bf16(including_emulation: bool = False) -> bool:
    return False


def _t4_after_import() -> None:
    """Unsloth's own bf16 flag comes from the device's compute capability, not from torch's probe, and its import
    wraps torch's probe around that flag."""
    import torch

    for name in ("unsloth._gpu_init", "unsloth.models._utils"):
        if hasattr(sys.modules.get(name), "SUPPORTS_BFLOAT16"):
            sys.modules[name].SUPPORTS_BFLOAT16 = False
    torch.cuda.is_bf16_supported = _no_bf16


def _train(spec: dict) -> dict:
    if spec["t4"]:
        _t4_before_import()
    from qeu_vlm.backend import choose

    backend = choose(spec["backend"])            # first: Unsloth must patch before transformers is imported
    if spec["t4"]:
        _t4_after_import()
    import torch
    from transformers import TrainerCallback

    from qeu_vlm.tools.steps import loadable, prepare
    from qeu_vlm.training import train

    cuda = torch.cuda.is_available()

    class Clock(TrainerCallback):
        """Seconds per optimizer step, from one step's end to the next (data loading included, as in use);
        the GPU's peak while loading, then its peak while training (reset when training begins)."""

        def __init__(self):
            self.steps, self.load_peak, self.t = [], 0.0, time.perf_counter()

        def on_train_begin(self, args, state, control, **kw):
            if cuda:
                torch.cuda.synchronize()
                self.load_peak = torch.cuda.max_memory_reserved() / GIB
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
            self.t = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            if cuda:
                torch.cuda.synchronize()
            now = time.perf_counter()
            self.steps.append(now - self.t)
            self.t = now

    cfg = run_config(spec)
    run = Path(spec["run"])
    run.mkdir(parents=True, exist_ok=True)
    prepared = prepare(cfg)
    clock = Clock()
    train(loadable(cfg, run), prepared.train_convs, [], run, resume=False, callbacks=[clock])
    stats = json.loads((run / "train_stats.json").read_text())
    steady = clock.steps[1:] or clock.steps      # the first step compiles and warms up: left out when there are more
    s_step = sum(steady) / len(steady)
    samples = (cfg.batch_size or 1) * (cfg.grad_accum or 1)
    out = {"backend": stats["backend"], "trainer": stats["trainer"], "steps": stats["steps"],
           "first step s": round(clock.steps[0], 3), "s/step": round(s_step, 3),
           "samples/s": round(samples / s_step, 3), "tokens/s": round(samples / s_step * stats["tokens_per_sample"]),
           "tokens/sample": stats["tokens_per_sample"], "samples/step": samples,
           "trainer samples/s": stats["samples_per_s"]}
    if cuda:
        train_peak = torch.cuda.max_memory_reserved() / GIB
        out |= {"peak GiB": round(train_peak, 2), "load peak GiB": round(clock.load_peak, 2),
                "process peak GiB": round(max(train_peak, clock.load_peak), 2)}
    return out


def _notebooks(spec: dict) -> dict:
    """Notebooks 03 and 05 in fresh kernels, not in smoke mode, on the run folder this writes."""
    from qeu_vlm.tools.notebook_runner import run_notebooks

    cfg = replace(run_config(spec), one_shot_first=8, n_inspect=2)
    run = Path(spec["run"])
    run.mkdir(parents=True, exist_ok=True)
    cfg.save(run / "config.json")
    seconds = run_notebooks(run, smoke=False, only=NOTEBOOKS, timeout=max(60, int(spec["timeout"])))
    stats = json.loads((run / "train_stats.json").read_text())
    return {"passed": True, "seconds": seconds, "backend": stats["backend"], "trainer": stats["trainer"],
            "steps": stats["steps"], "executed": str(run / "executed")}


def _ddp(spec: dict) -> dict:
    """Two processes, one GPU each: the project's train command under ``accelerate launch`` (the DDP config)."""
    run = Path(spec["run"])
    run.mkdir(parents=True, exist_ok=True)
    run_config(spec).save(run / "config.json")
    done = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--config_file",
                           str(ROOT / "configs" / "accelerate" / "ddp.yaml"), "--num_processes", "2",
                           "-m", "qeu_vlm", "train", "--run", str(run)],
                          cwd=ROOT, capture_output=True, text=True, timeout=max(60, int(spec["timeout"])))
    if done.returncode:
        raise RuntimeError(f"accelerate launch exited with {done.returncode}: {done.stderr.strip()[-400:]}")
    stats = json.loads((run / "train_stats.json").read_text())
    return {"backend": stats["backend"], "trainer": stats["trainer"], "steps": stats["steps"],
            "processes": stats["processes"], "samples/step": stats["effective_batch"],
            "trainer samples/s": stats["samples_per_s"]}


def two_gpu(runner, probe: dict, single: dict | None, spec: dict) -> dict:
    """The two-GPU row: run when the machine has two GPUs, else unmeasured, saying why; the ratio is two GPUs'
    samples/s over one GPU's (the hf zero-shot row), both as the trainer counts them."""
    gpus = probe.get("gpus", 0)
    if gpus < 2:
        return {"verdict": "unmeasured", "why": f"needs two CUDA GPUs; this machine has {gpus}"}
    row = runner(spec["name"], spec)
    one = (single or {}).get("trainer samples/s")
    if row.get("error") or not one:
        return row | {"verdict": "unmeasured", "why": row.get("error") or "no one-GPU hf zero-shot row to compare"}
    return row | {"verdict": "measured", "ratio": round(row["trainer samples/s"] / one, 2),
                  "why": f"{row['trainer samples/s']} vs {one} samples/s on one GPU"}


CHILDREN = {"probe": _probe, "build": _build, "train": _train, "notebooks": _notebooks, "ddp": _ddp}


def child(spec: dict) -> dict:
    """Run one child's work and write its result (or the error that stopped it) to ``spec["result"]``."""
    try:
        result = CHILDREN[spec["kind"]](spec)
    except Exception as e:                 # any failure is the row's figure: recorded, never guessed around
        result = {"error": _why(e)}
    result |= {"pid": os.getpid(), "unsloth_imported": "unsloth" in sys.modules}
    Path(spec["result"]).write_text(json.dumps(result, indent=1, default=str))
    return result


# -- the parent ------------------------------------------------------------------------------------------------
class Runner:
    """Starts each child as its own process and keeps the whole run inside the time budget: a child is not started
    when less time is left than the longest child of its kind took so far, and is stopped when the budget ends."""

    def __init__(self, out: Path, budget_s: float):
        self.out, self.end, self.longest = out, time.monotonic() + budget_s, {}
        (out / "logs").mkdir(parents=True, exist_ok=True)
        (out / "results").mkdir(parents=True, exist_ok=True)

    def left(self) -> float:
        return self.end - time.monotonic()

    def __call__(self, name: str, spec: dict) -> dict:
        kind = spec["kind"]
        need = self.longest.get(kind, 1.0)
        if self.left() < need:
            took = f", a {kind} run took {need:.0f} s" if kind in self.longest else ""
            return {"error": f"skipped: budget ({max(0.0, self.left()):.0f} s left{took})"}
        result = self.out / "results" / f"{name}.json"
        result.unlink(missing_ok=True)
        spec = dict(spec, result=str(result), timeout=self.left())
        env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1",
                   PYTHONPATH=os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
        env.pop("QEU_VLM_SMOKE", None)            # the notebooks run for real, not in smoke mode
        t = time.monotonic()
        with open(self.out / "logs" / f"{name}.log", "w") as log:
            # a session of its own, so a child stopped at the budget takes its notebook kernels with it
            p = subprocess.Popen([sys.executable, "-m", "benchmarks.gpu", "--child", json.dumps(spec)], cwd=ROOT,
                                 env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            try:
                rc = p.wait(timeout=max(1.0, self.left()))
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
                return {"error": f"skipped: budget (stopped after {time.monotonic() - t:.0f} s)", "pid": p.pid}
        took = time.monotonic() - t
        self.longest[spec["kind"]] = max(took, self.longest.get(spec["kind"], 0))
        if not result.exists():
            return {"error": f"the child exited with code {rc} and no result; see logs/{name}.log", "pid": p.pid}
        return json.loads(result.read_text()) | {"child s": round(took, 1)}


def planner_gib(preset: str, shot: str, backend: str) -> float:
    """The planner's estimate for a run's setting (the checkpointing each backend runs)."""
    from qeu_vlm.config import Config
    from qeu_vlm.tools.planner import Setting, estimate

    p = PRESETS[preset]
    return estimate(Setting(preset, shot, p.max_pixels, p.batch_size, p.grad_accum, load_in_4bit=p.load_in_4bit,
                            lora_r=Config.lora_r, checkpointing="unsloth" if backend == "unsloth" else "standard"
                            )).peak_gib


def plan_runs(args) -> list[dict]:
    """The runs in the order they matter: the first preset's backend comparison, its T4 run, the notebooks, then
    the other presets' (what the budget cuts is last)."""
    presets = ["tiny"] if args.tiny else args.presets.split(",")
    backends = args.backends.split(",")
    t4_backend = "unsloth" if "unsloth" in backends else backends[0]
    runs = []
    for i, preset in enumerate(presets):
        for shot in ("zero", "one"):
            runs += [dict(kind="train", preset=preset, shot=shot, backend=b, t4=False) for b in backends]
        if args.t4 and preset != "tiny" and PRESETS[preset].gpu == "T4":
            runs.append(dict(kind="train", preset=preset, shot="one", backend=t4_backend, t4=True))
        if i == 0 and args.notebooks:
            runs.append(dict(kind="notebooks", preset="tiny" if args.tiny else DEFAULT_PRESET, shot="one",
                             backend="auto", t4=False))
    for r in runs:
        r["name"] = ("notebooks-03-05" if r["kind"] == "notebooks"
                     else f"{r['preset']}-{r['shot']}-{r['backend']}" + ("-t4" if r["t4"] else ""))
    return runs


def run_all(args, argv) -> dict:
    t0 = time.monotonic()
    out = Path(args.out or tempfile.mkdtemp(prefix="qeu_gpu_bench_")).resolve()
    out.mkdir(parents=True, exist_ok=True)
    runner = Runner(out, args.budget_s)
    toy = args.tiny or args.shrink
    wheels = missing_wheels()
    res = {"date": str(date.today()), "command": "python -m benchmarks.gpu " + " ".join(argv), "out": str(out),
           "budget_s": args.budget_s, "toy": toy, "steps": args.steps, "wheels": wheels,
           "versions": {n: _installed(n) or "not installed"
                        for n in ("torch", "transformers", "trl", "peft", "accelerate", "bitsandbytes", "unsloth",
                                  "unsloth_zoo", "xformers", "torchvision")}}
    res["versions"]["python"] = sys.version.split()[0]
    print(f"wheels not installed: {', '.join(wheels['missing']) or 'none'}"
          + (f"; not importable: {', '.join(wheels['not_importable'])}" if wheels["not_importable"] else ""),
          flush=True)
    probe = runner("probe", {"kind": "probe"})
    res["probe"] = probe
    res["cuda"] = bool(probe.get("cuda"))
    res["device"] = probe.get("device", f"unknown ({probe.get('error')})")
    if res["cuda"] and (wheels["missing"] or wheels["not_importable"]) and not args.allow_missing:
        raise SystemExit(f"missing wheels on a GPU machine: {', '.join(wheels['missing'] + wheels['not_importable'])}"
                         "; bring them (python -m benchmarks.gpu --wheels) or pass --allow-missing")
    runs = plan_runs(args)
    models = {"tiny": "tiny"}
    presets = sorted({r["preset"] for r in runs} - {"tiny"}, key=[r["preset"] for r in runs].index)
    build = (runner("build", {"kind": "build", "presets": presets, "root": str(out), "shrink": args.shrink})
             if presets else {})
    res["build"] = build
    models |= build.get("models", {})
    rows = []
    for r in runs:
        row = {k: r[k] for k in ("name", "kind", "preset", "shot", "backend", "t4")}
        if r["preset"] not in models:
            row["error"] = build.get("errors", {}).get(r["preset"]) or f"not built: {build.get('error')}"
        else:
            spec = dict(r, model=models[r["preset"]], steps=args.steps, shrink=args.shrink,
                        run=str(out / "runs" / r["name"]))
            row |= runner(r["name"], spec)
            if not toy and r["kind"] == "train":
                row["planner GiB"] = planner_gib(r["preset"], r["shot"], r["backend"])
                if row.get("peak GiB"):
                    row["planner error %"] = round((row["planner GiB"] / row["peak GiB"] - 1) * 100, 1)
        rows.append(row)
        done = (_nb_result(row) if r["kind"] == "notebooks"
                else f"{row.get('steps')} steps, {row.get('samples/s')} samples/s, peak {row.get('peak GiB')} GiB")
        print(f"[{time.monotonic() - t0:5.0f} s] {row['name']}: {row.get('error') or done}", flush=True)
    res["rows"] = rows
    first = runs[0]["preset"]
    if first in models:
        name = f"{first}-zero-hf-2gpu"
        res["two_gpu"] = two_gpu(runner, probe, next((r for r in rows if r["name"] == f"{first}-zero-hf"), None),
                                 dict(kind="ddp", name=name, preset=first, shot="zero", backend="hf", t4=False,
                                      model=models[first], steps=args.steps, shrink=args.shrink,
                                      run=str(out / "runs" / name)))
        print(f"[{time.monotonic() - t0:5.0f} s] two GPUs: {res['two_gpu']['verdict']} ({res['two_gpu']['why']})",
              flush=True)
    res["targets"] = targets(res)
    res["wall_s"] = round(time.monotonic() - t0, 1)
    res["parent"] = {"pid": os.getpid(),
                     "imported": [m for m in ("torch", "transformers", "trl", "peft", "unsloth") if m in sys.modules]}
    (out / "gpu_results.json").write_text(json.dumps(res, indent=1, default=str))
    (out / "gpu_results.md").write_text(markdown(res))
    print(markdown(res))
    return res


# -- the verdicts ----------------------------------------------------------------------------------------------
def _verdict(value, ok: bool | None, why: str = "") -> dict:
    return {"value": value, "verdict": "unmeasured" if ok is None else ("met" if ok else "NOT met"), "why": why}


def _unmeasured_because(res: dict) -> str | None:
    if not res.get("cuda"):
        return "no CUDA GPU"
    if res.get("toy"):
        return "toy-size models (--tiny/--shrink), not the presets' real size"
    return None


def targets(res: dict) -> list[dict]:
    """Each target with its measured value and met / NOT met / unmeasured: unmeasured wherever the figure does not
    exist (no GPU, toy models, a run that failed or was skipped)."""
    rows = {r["name"]: r for r in res["rows"]}
    off = _unmeasured_because(res)
    out = []
    if not any(r["kind"] == "train" and r["backend"] == "unsloth" for r in res["rows"]):
        out.append({"target": f"Unsloth / hf samples/s >= {TARGETS['ratio']}x",
                     **_verdict(None, None, "no unsloth run (--backends)")})
    for r in res["rows"]:
        if r["kind"] != "train" or r["t4"] or r["backend"] != "unsloth":
            continue
        hf = rows.get(f"{r['preset']}-{r['shot']}-hf")
        what = f"{r['preset']} {r['shot']}-shot: Unsloth / hf samples/s >= {TARGETS['ratio']}x"
        if hf is None:
            v = _verdict(None, None, "no hf run to compare with (--backends)")
        elif off:
            v = _verdict(None, None, off)
        elif r.get("samples/s") and hf.get("samples/s"):
            ratio = round(r["samples/s"] / hf["samples/s"], 2)
            v = _verdict(ratio, ratio >= TARGETS["ratio"], f"{r['samples/s']} vs {hf['samples/s']} samples/s")
        else:
            v = _verdict(None, None, r.get("error") or hf.get("error"))
        out.append({"target": what, **v})
    t4 = next((r for r in res["rows"] if r["t4"] and r["preset"] == DEFAULT_PRESET), None)
    what = f"{DEFAULT_PRESET} one-shot peak under a T4's {T4_GIB:g} GiB cap <= {TARGETS['t4']:g} GiB"
    if off:
        v = _verdict(None, None, off)
    elif t4 is None:
        v = _verdict(None, None, f"no T4 run of {DEFAULT_PRESET} (--presets, --no-t4)")
    elif "OutOfMemoryError" in t4.get("error", "") or "out of memory" in t4.get("error", "").lower():
        v = _verdict(None, False, f"out of memory under the cap ({t4['backend']}): {t4['error'][:200]}")
    elif t4.get("process peak GiB"):
        peak = t4["process peak GiB"]
        v = _verdict(peak, peak <= TARGETS["t4"], f"{t4['backend']}, {t4['steps']} steps, fp16")
    else:
        v = _verdict(None, None, t4.get("error", "no peak recorded"))
    out.append({"target": what, **v})
    errors = [(r["name"], r["planner error %"]) for r in res["rows"] if r.get("planner error %") is not None]
    what = f"planner within {TARGETS['planner']:g}% of each measured peak"
    if off or not errors:
        v = _verdict(None, None, off or "no peak measured")
    else:
        worst = max(errors, key=lambda e: abs(e[1]))
        v = _verdict(worst[1], abs(worst[1]) <= TARGETS["planner"],
                     f"largest error of {len(errors)} runs: {worst[0]}")
    out.append({"target": what, **v})
    nb = rows.get("notebooks-03-05")
    what = f"notebooks 03 and 05 end to end, not smoke, on the random-weight real-size {DEFAULT_PRESET}"
    if off:
        v = _verdict(None, None, off + (f"; the path ran here: {_nb_result(nb)}" if nb else ""))
    elif nb is None:
        v = _verdict(None, None, "not run (--no-notebooks)")
    elif nb.get("passed"):
        v = _verdict(sum(nb["seconds"].values()), True, _nb_result(nb))
    elif nb.get("error", "").startswith(("skipped", "not built")):
        v = _verdict(None, None, nb["error"])
    else:
        v = _verdict(None, False, nb.get("error"))
    out.append({"target": what, **v})
    return out


def _nb_result(nb: dict) -> str:
    if nb.get("passed"):
        return (f"passed ({', '.join(f'{k} {v} s' for k, v in nb['seconds'].items())}; {nb['backend']}, "
                f"{nb['trainer']}, {nb['steps']} steps)")
    return f"failed: {nb.get('error')}"


COLUMNS = ["backend", "steps", "s/step", "samples/s", "tokens/s", "peak GiB", "planner GiB", "planner error %",
           "trainer", "child s", "pid"]


def markdown(res: dict) -> str:
    v = res["versions"]
    lines = ["# GPU benchmark (`benchmarks/gpu.py`)", "",
             f"- device: {res['device']}" + (f", {res['probe']['total_gib']} GiB, CUDA {res['probe']['cuda_version']}"
                                             if res.get("cuda") else ""),
             f"- date: {res['date']}; wall time {res.get('wall_s', '?')} s of a {res['budget_s']:g} s budget",
             "- versions: " + ", ".join(f"{k} {x}" for k, x in v.items()),
             f"- command: `{res['command']}`",
             f"- wheels not installed: {', '.join(res['wheels']['missing']) or 'none'}",
             "- models: " + ("toy size (CPU checks of the paths): **not figures of the real models**" if res["toy"]
                             else "random weights, each preset's real architecture, built offline"),
             "- s/step, samples/s, tokens/s: mean over the steps after the first; peak: reserved GPU memory while "
             "training (T4 rows: the whole process, loading included, under the cap)", "",
             "| run | " + " | ".join(COLUMNS) + " | error |", "|---|" + "---|" * (len(COLUMNS) + 1)]
    for r in res["rows"]:
        if r["kind"] != "train":
            continue
        cells = [r.get(c) for c in COLUMNS]
        if r["t4"] and r.get("process peak GiB"):
            cells[COLUMNS.index("peak GiB")] = r["process peak GiB"]
        lines.append(f"| {r['name']} | " + " | ".join("" if c is None else str(c) for c in cells)
                     + f" | {r.get('error', '')} |")
    nb = next((r for r in res["rows"] if r["kind"] == "notebooks"), None)
    if nb:
        lines += ["", f"Notebooks {' and '.join(NOTEBOOKS)} (not smoke, model {nb['preset']}"
                  + (", toy size" if res["toy"] and nb["preset"] != "tiny" else "") + f"): {_nb_result(nb)}"
                  + (f"; pid {nb['pid']}" if nb.get("pid") else "")]
    two = res.get("two_gpu")
    if two:
        value = f"{two['ratio']}x, " if two.get("ratio") else ""
        lines += ["", f"Two-GPU training (DDP, hf, zero-shot, `accelerate launch`): {value}**{two['verdict']}** "
                  f"({two['why']})"]
    lines += ["", "## Targets", ""]
    for t in res["targets"]:
        value = "" if t["value"] is None else f"{t['value']}: "
        lines.append(f"- {t['target']}: {value}**{t['verdict']}**" + (f" ({t['why']})" if t["why"] else ""))
    return "\n".join(lines) + "\n"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    a = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    a.add_argument("--presets", default=DEFAULT_PRESET, help="comma-separated preset names")
    a.add_argument("--backends", default="unsloth,hf")
    a.add_argument("--steps", type=int, default=6, help="optimizer steps per run (the first is left out of s/step)")
    a.add_argument("--t4", action=argparse.BooleanOptionalAction, default=True,
                   help="also run each T4 preset one-shot capped at 15 GiB with fp16, as on a T4")
    size = a.add_mutually_exclusive_group()
    size.add_argument("--tiny", action="store_true", help="the tiny offline model instead of the presets (CPU check)")
    size.add_argument("--shrink", action="store_true", help="each preset's family at toy size (CPU check)")
    a.add_argument("--notebooks", action=argparse.BooleanOptionalAction, default=True,
                   help="run notebooks 03 and 05 end to end (not smoke) on the default preset's random model")
    a.add_argument("--budget-s", type=float, default=540, help="the whole run's time limit in seconds")
    a.add_argument("--out", help="folder for models, runs, logs and gpu_results.{json,md} (default: a temporary one)")
    a.add_argument("--allow-missing", action="store_true", help="run on a GPU even when wheels are missing")
    a.add_argument("--wheels", action="store_true", help="print the wheels to bring (name==version) and exit")
    a.add_argument("--torch", help="with --wheels: the GPU machine's torch version (default: the installed one)")
    a.add_argument("--child", help=argparse.SUPPRESS)
    args = a.parse_args(argv)
    if args.child:
        return child(json.loads(args.child))
    if args.wheels:
        print(wheels_text(args.torch), end="")
        return None
    unknown = [p for p in args.presets.split(",") if p not in PRESETS]
    if unknown and not args.tiny:
        a.error(f"unknown preset(s) {', '.join(unknown)}; known: {', '.join(PRESETS)}")
    if set(args.backends.split(",")) - {"unsloth", "hf"}:
        a.error("--backends takes unsloth and/or hf")
    return run_all(args, argv)


if __name__ == "__main__":
    main()
