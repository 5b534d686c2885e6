"""Unsloth's own code on CPU, on the package set Colab users get (the Colab lane): its vision collator under the
loss mask, its patched SFTTrainer training through ``qeu_vlm.training.train``, and the import order of every entry
point. Only ``FastVisionModel.from_pretrained``/``get_peft_model`` and Unsloth's GPU kernels are left out
(``tests/unsloth_seam.py``: models load through transformers + peft instead)."""
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from qeu_vlm.batching import TrainingError, make_collator, preflight
from qeu_vlm.config import Config
from qeu_vlm.conversation import convert, shot_plan, with_image_list
from qeu_vlm.data import load_pools
from qeu_vlm.model import load_model
from qeu_vlm.tools.steps import loadable
from qeu_vlm.training import train

pytestmark = [pytest.mark.unsloth, pytest.mark.slow]
ROOT = Path(__file__).resolve().parent.parent
END = "<|im_end|>"


@pytest.fixture(scope="module")
def unsloth_seam():
    import unsloth_seam

    unsloth_seam.import_unsloth_as_on_a_gpu()
    unsloth_seam.install()
    return unsloth_seam


@pytest.fixture(scope="module")
def tiny(unsloth_seam, twin, twin_dir, tmp_path_factory):
    run = tmp_path_factory.mktemp("unsloth")
    cfg = loadable(Config().smoke(), run)
    model, proc = load_model(cfg, "hf")
    recs = twin.splits["CYLNimages_train_1015"][:8]
    convs = convert(recs, load_pools(twin_dir / "drive"), shot_plan(8, one_shot_first=3), seed=0)
    return cfg, run, model, proc, convs


def _answer(conv) -> str:
    return conv["messages"][-1]["content"][0]["text"]


def test_unsloth_collator_gives_trl_pixels_and_supervises_only_the_final_answer(tiny):
    from unsloth.trainer import UnslothVisionDataCollator

    cfg, _, model, proc, convs = tiny
    model.max_seq_length = 64       # what FastVisionModel sets; Unsloth's collator would cut there if left to itself
    unsloth, trl = make_collator(cfg, model, proc, "unsloth"), make_collator(cfg, model, proc, "hf")
    assert isinstance(unsloth.collator, UnslothVisionDataCollator)
    one, zero = convs[0], convs[5]
    assert len(with_image_list(one)["images"]) == 3 and len(with_image_list(zero)["images"]) == 2
    for group in ([one], [zero], [one, zero], [zero, one, convs[6]]):
        samples = [with_image_list(c) for c in group]
        u, t = unsloth(samples), trl(samples)
        assert torch.equal(u["pixel_values"], t["pixel_values"])
        assert torch.equal(u["image_grid_thw"], t["image_grid_thw"])
        for b, conv in enumerate(group):
            kept_u, kept_t = u["attention_mask"][b].bool(), t["attention_mask"][b].bool()
            assert torch.equal(u["input_ids"][b][kept_u], t["input_ids"][b][kept_t])       # nothing truncated
            assert int(kept_u.sum()) > 64
            supervised = proc.tokenizer.decode(u["input_ids"][b][u["labels"][b] != -100])
            assert supervised == _answer(conv) + END


def test_an_over_long_sample_gets_the_same_error_on_both_backends(tiny):
    cfg, _, model, proc, convs = tiny
    sample = [with_image_list(convs[0])]
    n = preflight(make_collator(cfg, model, proc, "hf"), sample, [7], None)[0]
    for backend in ("unsloth", "hf"):
        collator = make_collator(cfg, model, proc, backend)
        with pytest.raises(
            TrainingError, match=rf"train record 7: {n} tokens exceed max_length={n - 8}\b.*at least {n}"
        ):
            preflight(collator, sample, [7], n - 8)
        assert preflight(collator, sample, [7], n) == [n]


def test_unsloths_trainer_trains_evaluates_saves_and_the_adapter_reloads_and_answers(tiny, tmp_path):
    from qeu_vlm.generation import generate

    cfg, _, _, _, convs = tiny
    cfg = replace(cfg, backend="unsloth", full_finetune=False, lora_r=8, lora_alpha=16, max_steps=4, eval_steps=2,
                  save_steps=2, learning_rate=5e-3)
    trainer = train(cfg, convs[:6], convs[6:], tmp_path)
    assert type(trainer).__name__ == "UnslothSFTTrainer"
    assert json.loads((tmp_path / "train_stats.json").read_text())["trainer"] == "UnslothSFTTrainer"
    log = json.loads((tmp_path / "log_history.json").read_text())
    assert [h["step"] for h in log if "eval_loss" in h] == [2, 4]
    assert (tmp_path / "adapter" / "adapter_config.json").exists()
    assert (tmp_path / "checkpoints" / "checkpoint-4").exists()

    model, proc = load_model(cfg, "unsloth", adapter=tmp_path / "adapter")
    trained = {k: v for k, v in trainer.model.state_dict().items() if "lora_" in k}
    reloaded = {k: v for k, v in model.state_dict().items() if "lora_" in k}
    assert trained and trained.keys() == reloaded.keys()
    assert all(torch.equal(trained[k].cpu(), reloaded[k].cpu()) for k in trained)
    assert any(v.abs().sum() > 0 for k, v in reloaded.items() if "lora_B" in k)       # trained, not LoRA's zero init
    infer = [dict(c, messages=c["messages"][:-1]) for c in convs[6:]]
    answers = generate(model, proc, infer, max_new_tokens=12, progress=False, backend="unsloth")
    assert len(answers) == 2 and all(isinstance(text, str) and text for text, _ in answers)
    assert getattr(model.base_model.model, "_flag_for_generation", False)          # FastVisionModel.for_inference ran


# -- every entry point imports Unsloth first and so trains with its trainer -------------------------------------
def _small_unsloth_run(run: Path) -> None:
    cfg = replace(Config(run_dir=str(run)).smoke(), smoke_mode=False, backend="unsloth", n_train=12, n_test=4,
                  n_eval=0, eval_steps=0, save_steps=100, max_steps=1, n_inspect=2, one_shot_first=4)
    run.mkdir(parents=True, exist_ok=True)
    cfg.save(run / "config.json")


def _env(tmp_path) -> dict:
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text("import unsloth_seam\nunsloth_seam.install()\n")
    path = os.pathsep.join([str(site), str(ROOT / "tests"), str(ROOT), os.environ.get("PYTHONPATH", "")])
    return dict(os.environ, PYTHONPATH=path, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")


ENTRY_POINTS = {           # (command, where it writes train_stats.json, where its processes' output goes)
    "cli train": lambda run: ([sys.executable, "-m", "qeu_vlm", "train", "--run", str(run)], run, []),
    "pipeline train_step": lambda run: ([sys.executable, "-c", "from qeu_vlm.config import Config; "
                                         "from qeu_vlm.tools.steps import train_step; "
                                         f"train_step(Config.load({str(run / 'config.json')!r}))"], run, []),
    "notebook 03": lambda run: ([sys.executable, "-c", "from qeu_vlm.tools.notebook_runner import run_notebooks; "
                                 f"run_notebooks({str(run)!r}, smoke=False, only=['03_finetune'])"], run, []),
    "gpu benchmark": lambda run: ([sys.executable, "-m", "benchmarks.gpu", "--tiny", "--backends", "unsloth",
                                   "--steps", "1", "--no-notebooks", "--out", str(run / "bench")],
                                  run / "bench" / "runs" / "tiny-zero-unsloth",
                                  list((run / "bench" / "logs").glob("*"))),
}


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_every_entry_point_trains_with_unsloths_trainer(entry, tmp_path):
    run = tmp_path / "run"
    _small_unsloth_run(run)
    command, _, _ = ENTRY_POINTS[entry](run)
    done = subprocess.run(command, env=_env(tmp_path), cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    _, stats_dir, logs = ENTRY_POINTS[entry](run)
    stats = json.loads((stats_dir / "train_stats.json").read_text())
    assert stats["backend"] == "unsloth" and stats["trainer"] == "UnslothSFTTrainer", stats
    assert not any("imported before Unsloth" in text for text in [done.stderr] + [p.read_text() for p in logs])
