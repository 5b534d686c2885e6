"""The benchmark commands run end to end (figures are checked by reading them, not by timed tests)."""
import json
import os
import re
import subprocess
import sys
import time
from importlib.util import find_spec
from pathlib import Path

import pytest

from qeu_vlm.tools.planner import ARCHS
from qeu_vlm.presets import PRESETS
from qeu_vlm.offline.random_models import random_config

from benchmarks import cpu, gpu

pytestmark = pytest.mark.slow          # trains, or runs commands end to end


def test_cpu_benchmark_prints_every_figure(capsys):
    rows = cpu.main(["--quick"])
    names = [r[0] for r in rows]
    assert names == ["twin generation + write", "conversion", "collator (TRL + loss mask)", "tiny-model training",
                     "inspection, batched 16 vs one-by-one", "quick replay"]
    out = capsys.readouterr().out
    assert re.search(r"machine: .*cores.*date \d{4}-\d\d-\d\d", out)
    assert re.search(r"\| inspection, batched 16 vs one-by-one \| 8 samples \| [\d.]+ s vs [\d.]+ s \| [\d.]+x \|", out)
    assert re.search(r"[\d.]+ steps/s, [\d.]+ samples/s", out)


# -- benchmarks/gpu.py: on CPU at toy size, every path it takes on a GPU; its GPU figures stay unmeasured here -----
ROOT = Path(__file__).resolve().parent.parent
TARGET_NAMES = ("Unsloth / hf samples/s", "peak under a T4", "planner within", "notebooks 03 and 05")


def _gpu_bench(out: Path, *args: str) -> tuple[dict, str, str]:
    """Run the command as a user would, in its own process, so what the parent imported is its own."""
    done = subprocess.run([sys.executable, "-m", "benchmarks.gpu", "--out", str(out), "--budget-s", "1500", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=1800,
                          env={k: v for k, v in os.environ.items() if k != "QEU_VLM_SMOKE"})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return json.loads((out / "gpu_results.json").read_text()), (out / "gpu_results.md").read_text(), done.stdout


def _targets_unmeasured(res: dict, md: str) -> None:
    """No GPU here: every target reads unmeasured, with no value, in the JSON and in the Markdown."""
    assert [t["target"] for t in res["targets"]] and all(
        any(n in t["target"] for t in res["targets"]) for n in TARGET_NAMES)
    for t in res["targets"]:
        assert t["verdict"] == "unmeasured" and t["value"] is None, t
        assert f"- {t['target']}: **unmeasured**" in md


@pytest.mark.slow
def test_gpu_benchmark_runs_each_backend_in_its_own_process_and_the_notebooks(tmp_path):
    """The GPU command at toy size: the default preset's family, both backends, the T4 run, notebooks 03 + 05."""
    res, md, stdout = _gpu_bench(tmp_path, "--shrink", "--backends", "hf,unsloth", "--steps", "2")
    rows = {r["name"]: r for r in res["rows"]}
    p = "qwen2.5-vl-3b"
    assert list(rows) == [f"{p}-zero-hf", f"{p}-zero-unsloth", f"{p}-one-hf", f"{p}-one-unsloth", f"{p}-one-unsloth-t4",
                          "notebooks-03-05"]
    for shot in ("zero", "one"):
        hf = rows[f"{p}-{shot}-hf"]
        assert "error" not in hf and hf["steps"] == 2 and hf["samples/s"] > 0 and hf["tokens/s"] > 0, hf
        assert hf["trainer"] == "SFTTrainer" and hf["backend"] == "hf" and not hf["unsloth_imported"]
        assert "peak GiB" not in hf and "planner GiB" not in hf           # no GPU, and no estimate for toy sizes
        assert "the unsloth backend cannot run" in rows[f"{p}-{shot}-unsloth"]["error"]     # says why, not a figure
    assert "CUDA GPU" in rows[f"{p}-one-unsloth-t4"]["error"]
    nb = rows["notebooks-03-05"]
    assert nb.get("passed") and set(nb["seconds"]) == {"03_finetune.ipynb", "05_inspect.ipynb"}, nb
    assert nb["steps"] == 2 and nb["backend"] == "hf"
    config = json.loads((tmp_path / "runs" / "notebooks-03-05" / "config.json").read_text())
    assert not config["smoke_mode"] and config["model"].endswith("model-qwen2.5-vl-3b-toy")
    # one process per run: none is the parent, none is shared, and the parent never imported the libraries
    # that Unsloth patches (nor torch)
    pids = [r["pid"] for r in res["rows"]] + [res["probe"]["pid"], res["build"]["pid"]]
    assert len(set(pids)) == len(pids) and res["parent"]["pid"] not in pids
    assert res["parent"]["imported"] == []
    _targets_unmeasured(res, md)
    assert res["device"].startswith("CPU") and "device: CPU" in md
    for name in rows:
        if name != "notebooks-03-05":
            assert re.search(rf"^\| {re.escape(name)} \|", md, re.M)
    assert "| qwen2.5-vl-3b-zero-hf | hf | 2 |" in stdout                 # the table is printed too


@pytest.mark.slow
def test_gpu_benchmark_runs_the_tiny_model(tmp_path):
    res, md, _ = _gpu_bench(tmp_path, "--tiny", "--backends", "hf", "--steps", "2", "--no-notebooks")
    assert [r["name"] for r in res["rows"]] == ["tiny-zero-hf", "tiny-one-hf"]
    for r in res["rows"]:
        assert "error" not in r and r["steps"] == 2 and r["samples/s"] > 0 and r["trainer"] == "SFTTrainer", r
    assert "build" not in res or not res["build"]                     # the tiny model is built in each run folder
    _targets_unmeasured(res, md)


def test_gpu_benchmark_keeps_to_its_time_budget(tmp_path):
    """A child that would overrun is stopped (with its session), and nothing starts once the budget is spent."""
    t = time.monotonic()
    res, md, _ = _gpu_bench(tmp_path, "--tiny", "--backends", "hf", "--no-notebooks", "--budget-s", "6")
    assert time.monotonic() - t < 60
    errors = [res["probe"].get("error", "")] + [r["error"] for r in res["rows"]]
    assert all(e.startswith("skipped: budget") for e in errors[1:]), errors
    assert any("stopped after" in e for e in errors), errors    # the probe or the first run was stopped
    _targets_unmeasured(res, md)


def test_gpu_benchmark_verdicts_come_only_from_measured_figures():
    """met / NOT met from measured rows (made up here); unmeasured for whatever does not exist."""
    p = "qwen2.5-vl-3b"

    def row(name, **kw):
        preset, shot, backend = name.split("-t4")[0].rsplit("-", 2)
        return {"name": name, "kind": "train", "preset": preset, "shot": shot, "backend": backend,
                "t4": name.endswith("-t4"), **kw}

    rows = [row(f"{p}-zero-unsloth", **{"samples/s": 3.0, "peak GiB": 10.0, "planner error %": 10.0}),
            row(f"{p}-zero-hf", **{"samples/s": 1.5, "peak GiB": 12.0, "planner error %": -20.0}),
            row(f"{p}-one-unsloth", **{"samples/s": 1.2}), row(f"{p}-one-hf", error="OutOfMemoryError: CUDA out"),
            row(f"{p}-one-unsloth-t4", steps=6, **{"process peak GiB": 14.2}),
            {"name": "notebooks-03-05", "kind": "notebooks", "preset": p, "shot": "one", "backend": "auto",
             "t4": False, "passed": True, "seconds": {"03_finetune.ipynb": 50.0, "05_inspect.ipynb": 30.0},
             "trainer": "UnslothSFTTrainer", "steps": 6}]
    res = {"rows": rows, "cuda": True, "toy": False}
    got = [(t["value"], t["verdict"]) for t in gpu.targets(res)]
    assert got == [(2.0, "met"), (None, "unmeasured"), (14.2, "met"), (-20.0, "NOT met"), (80.0, "met")]
    rows[4] = row(f"{p}-one-unsloth-t4", error="OutOfMemoryError: CUDA out of memory. Tried to allocate 2 GiB")
    assert gpu.targets(res)[2]["verdict"] == "NOT met"
    for off in ({"cuda": False}, {"toy": True}):
        assert {t["verdict"] for t in gpu.targets(dict(res, **off))} == {"unmeasured"}
        assert {t["value"] for t in gpu.targets(dict(res, **off))} == {None}


def test_gpu_benchmark_lists_the_wheels_to_bring(capsys):
    gpu.main(["--wheels", "--torch", "2.13.0"])
    out = capsys.readouterr().out
    lines = [x for x in out.splitlines() if not x.startswith("#")]
    pinned = gpu.pins()
    assert lines and all(re.fullmatch(r"[A-Za-z0-9_.-]+==[\w.]+", x) for x in lines), lines
    names = {x.split("==")[0] for x in lines}
    assert {"unsloth", "unsloth-zoo", "trl", "bitsandbytes", "xformers", "papermill", "datasets"} <= names
    assert not names & {"torch", "transformers", "peft", "accelerate"}        # brought by the GPU machine's stack
    assert "torchvision==0.28.0" in lines and "xformers==0.0.35" in lines      # matched to torch 2.13
    assert all(pinned[gpu._norm(x.split("==")[0])] == x.split("==")[1] for x in lines
               if not x.startswith(("torchvision", "xformers")))
    assert "pip download --no-deps --only-binary=:all:" in out and "--python-version 3.12 --implementation cp" in out
    assert "--abi cp312" in out and "manylinux" in out
    assert ("unsloth" in gpu.missing_wheels()["missing"]) == (find_spec("unsloth") is None)


@pytest.mark.parametrize("preset", list(PRESETS))
def test_random_models_build_each_presets_real_architecture(preset):
    """The random model has the published parameter count (config only: weights on the meta device)."""
    import torch
    from transformers import AutoModelForImageTextToText

    with torch.device("meta"):
        model = AutoModelForImageTextToText.from_config(random_config(preset))
    billions = sum(p.numel() for p in model.parameters()) / 1e9
    assert abs(billions / ARCHS[preset].params_b - 1) < 0.05, (preset, billions)


@pytest.mark.slow
def test_gpu_benchmark_trains_every_family_at_toy_size(tmp_path):
    res, _, _ = _gpu_bench(tmp_path, "--presets", "qwen3-vl-2b,llama-3.2-11b-vision,pixtral-12b", "--shrink",
                           "--backends", "hf", "--steps", "1", "--no-notebooks", "--no-t4")
    rows = {r["name"]: r for r in res["rows"]}
    for preset in ("qwen3-vl-2b", "llama-3.2-11b-vision"):
        for shot in ("zero", "one"):
            r = rows[f"{preset}-{shot}-hf"]
            assert "error" not in r and r["steps"] == 1 and "planner GiB" not in r, r   # no estimate for toy sizes
    if find_spec("torchvision") is None:    # Pixtral's processor needs torchvision: reported, not guessed
        assert "torchvision" in rows["pixtral-12b-zero-hf"]["error"].lower()
    else:
        assert "error" not in rows["pixtral-12b-zero-hf"]


def test_main_job_benchmark_runs_each_seed_and_thread_count_in_its_own_process_and_judges_the_targets(tmp_path,
                                                                                                      capsys):
    from benchmarks import main_job

    rc = main_job.main(["--seeds", "0", "3", "--threads", "1", "--jobs", "2", "--smoke", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if re.match(r"\| [03] \| 1 \|", line)]
    assert len(rows) == 2 and all(row.endswith("| NOT met |") for row in rows)    # a smoke run learns little
    assert rc == 1 and "met on 0 of 2 runs" in out and "smallest margin over each target: format_valid" in out
    saved = json.loads((tmp_path / "seed3_threads1" / "metrics.json").read_text())
    assert (saved["seed"], saved["threads"]) == (3, 1)


@pytest.mark.parametrize("argv, message", [(["--seeds", "-1"], "--seeds must be"), (["--seeds", "1", "1"], "distinct"),
                                           (["--threads", "0"], "--threads must be"),
                                           (["--threads", "1", "--jobs", "99"], "--jobs 99")])
def test_main_job_benchmark_refuses_input_that_makes_no_sense_before_any_work(tmp_path, argv, message):
    from benchmarks import main_job

    with pytest.raises(SystemExit, match=message):
        main_job.main(argv + ["--out", str(tmp_path / "b")])
    assert not (tmp_path / "b").exists()


def test_the_two_gpu_row_is_unmeasured_below_two_gpus_and_a_ratio_with_two():
    def never(name, spec):
        raise AssertionError("no run on a machine with fewer than two GPUs")

    row = gpu.two_gpu(never, {"cuda": True, "gpus": 1}, {"trainer samples/s": 2.0}, {"name": "x-2gpu"})
    assert row == {"verdict": "unmeasured", "why": "needs two CUDA GPUs; this machine has 1"}
    row = gpu.two_gpu(lambda name, spec: {"trainer samples/s": 3.5, "processes": 2}, {"gpus": 2},
                      {"trainer samples/s": 2.0}, {"name": "x-2gpu"})
    assert (row["verdict"], row["ratio"]) == ("measured", 1.75)
