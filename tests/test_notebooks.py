"""The notebook suite: conventions checked statically, then every notebook executed in order in smoke mode."""
import json
import re

import nbformat
import pytest

from qeu_vlm.tools.notebook_runner import NotebookError, notebooks, run_notebooks

NBS = notebooks()


def _code(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def test_the_suite_is_complete():
    assert [p.stem[:2] for p in NBS] == ["01", "02", "03", "04", "05", "06"]


@pytest.mark.parametrize("path", NBS, ids=lambda p: p.name)
def test_conventions(path):
    nb = nbformat.read(path, as_version=4)
    assert re.fullmatch(r"\d\d_[a-z0-9_]+\.ipynb", path.name)
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# ")
    assert "colab.research.google.com/github/" in first.source and f"notebooks/{path.name})" in first.source
    code = _code(nb)
    install = code[0].source
    assert "COLAB_" in install and "install_colab_stack()" in install, "first code cell: the Colab-only install"
    assert len(install.splitlines()) <= 8, "the install cell: at most 8 lines"
    params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and "SMOKE = False" in params[0].source and "RUN_DIR = None" in params[0].source
    # papermill reads each parameter line; a second "=" (in a comment) makes it skip the line, and warn
    assert all(line.count("=") <= 1 for line in params[0].source.splitlines()), "no '=' in parameter comments"
    opening = code[code.index(params[0]) + 1].source
    assert "smoke_notice(cfg)" in opening and "open_run(RUN_DIR, SMOKE" in opening
    assert re.search(r"cfg = open_run\(.*\n(?:.*\n)?backend = choose\(cfg\.backend\)", opening)
    if path.stem[:2] != "01":                 # each later notebook stops, naming 01, on a folder 01 never made
        assert 'first="01_load_data"' in opening
    for c in code:
        assert c.outputs == [] and c.execution_count is None, f"{path.name}: outputs committed; strip them"
        assert not re.search(r"^\s*(def|class) |lambda", c.source, re.M), f"{path.name}: logic belongs in qeu_vlm"
    assert any("from qeu_vlm" in c.source for c in code)
    numbers = [
        int(m) for c in nb.cells if c.cell_type == "markdown" for m in re.findall(r"^## (\d+)\. ", c.source, re.M)
    ]
    assert numbers == list(range(1, len(numbers) + 1)) and len(numbers) >= 3


def test_one_install_cell_runs_unsloths_recipe_with_the_colab_lanes_versions():
    from qeu_vlm.colab import COLAB_STACK

    cells = {_code(nbformat.read(p, as_version=4))[0].source for p in NBS}
    assert len(cells) == 1, "the install cell differs between notebooks"
    cell = cells.pop()
    assert '"--no-deps",' in cell and "qeu_vlm @ git+" in cell    # the package moves none of the recipe's pins
    lane = dict(line.split("==") for line in (NBS[0].parent.parent / "requirements-colab.txt").read_text().split("\n")
                if "==" in line and not line.startswith("#"))
    lane = {k.lower().replace("_", "-"): v for k, v in lane.items()}
    pins = [a.split("==") for step in COLAB_STACK for a in step if "==" in a]
    assert {"unsloth", "unsloth_zoo", "transformers", "trl", "peft"} <= {name for name, _ in pins}
    for name, version in pins:
        assert lane[name.lower().replace("_", "-")] == version, (name, version)
    assert not any(a == "torch" or a.startswith("torch==") for step in COLAB_STACK for a in step)  # Colab's CUDA torch


def test_the_finetuning_notebook_makes_unsloths_calls_in_unsloths_order():
    code = [c.source for c in _code(nbformat.read(NBS[2], as_version=4))]
    calls = ["FastVisionModel.from_pretrained(", "FastVisionModel.get_peft_model(", "finetune_vision_layers",
             "lora_alpha = ", "FastVisionModel.for_inference(model)", "TextStreamer(", "preflight(",
             "UnslothVisionDataCollator(", "SFTConfig(", 'dataset_kwargs = {"skip_prepare_dataset": True}',
             "SFTTrainer(", "gpu_memory()", "trainer.train(resume_from_checkpoint=", "model.save_pretrained(",
             "FastVisionModel.from_pretrained(str(run / \"adapter\")"]
    where = [next((i for i, c in enumerate(code) if call in c), None) for call in calls]
    assert None not in where, [c for c, w in zip(calls, where) if w is None]
    assert where == sorted(where), list(zip(calls, where))
    for c in code:                      # the Unsloth call first and plainly: at most one if-statement per cell
        assert len(re.findall(r"^if ", c, re.M)) <= 1, c


# Text no reader should meet in a notebook's output.
NOISE = re.compile(r"Traceback|Warning|warn\(|Passed unknown parameter|site-packages|/root/|/home/|/usr/|/tmp/")
# Smallest sensible figure sizes in pixels (width, height): a figure drawn tiny or empty fails.
FIGURES = {"samples.png": (800, 500), "pools.png": (800, 500), "conversation_one.png": (900, 250),
           "learning_curves.png": (600, 350), "evaluation_base.png": (1200, 800),
           "evaluation_finetuned.png": (1200, 800), "example_base_one.png": (1100, 250),
           "example_finetuned_zero.png": (800, 250)}


@pytest.mark.slow
def test_all_notebooks_run_in_order_in_smoke_mode(tmp_path, monkeypatch):
    from PIL import Image

    monkeypatch.setenv("HF_TOKEN", "hf_secret_never_shown")
    seconds = run_notebooks(tmp_path, smoke=True)
    assert list(seconds) == [p.name for p in NBS]
    for f in ("samples.png", "pools.png", "predictions_base_one.jsonl", "adapter/model.safetensors",
              "learning_curves.png", "metrics_finetuned.json", "evaluation_finetuned.png", "adapter/README.md",
              "merged_16bit/model.safetensors"):
        assert (tmp_path / f).exists(), f
    for f, (w, h) in FIGURES.items():
        size = Image.open(tmp_path / f).size
        assert size[0] >= w and size[1] >= h, f"{f}: {size}, smaller than {(w, h)}"
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["smoke_mode"] and cfg["model"] == "tiny" and cfg["real_model"] == "qwen2.5-vl-3b"
    metrics = json.loads((tmp_path / "metrics_base.json").read_text())
    assert metrics["all"]["n_passed"] > 0, "the stratified slice holds passed parts"
    for p in NBS:
        executed = nbformat.read(tmp_path / "executed" / p.name, as_version=4)
        outputs = [o for c in _code(executed) for o in c.outputs]
        text = json.dumps([{k: v for k, v in o.get("data", {}).items() if k != "image/png"} for o in outputs]
                          + [o.get("text", "") for o in outputs])
        assert not [o for o in outputs if o.output_type == "error"]
        assert not [o.text for o in outputs if o.output_type == "stream" and o.name == "stderr"], p.name
        assert not NOISE.search(text) and str(tmp_path) not in text, (p.name, NOISE.search(text))
        assert "hf_secret_never_shown" not in text
        assert "Smoke mode: real machinery, toy model." in text, f"{p.name}: no smoke notice"
        assert "Config(" not in text, f"{p.name}: the settings as a table, not the repr"
        assert any(o.output_type == "display_data" and "image/png" in o.data for o in outputs) or p.stem[:2] in (
            "03",
            "06",
        )
    nb06 = json.dumps(nbformat.read(tmp_path / "executed" / "06_publish.ipynb", 4).dict())
    assert "Hub token found: True" in nb06 and "nothing pushed" in nb06
    assert "library_name: transformers" in nb06 and "GGUF: skipped" in nb06


@pytest.mark.slow
def test_a_failing_cell_names_the_notebook_and_the_cell(tmp_path):
    # 04 alone on an empty run folder: no run was started there, and the error must say so, where, and what to run.
    with pytest.raises(NotebookError, match=r"04_learning_curves\.ipynb, cell \[\d+\] failed: RunFolderError: "
                                            r".*no run here yet .*run notebook 01_load_data first"):
        run_notebooks(tmp_path, smoke=True, only=["04_learning_curves"])
    assert (tmp_path / "executed" / "04_learning_curves.ipynb").exists()
    assert not (tmp_path / "config.json").exists()             # nothing started with default settings
