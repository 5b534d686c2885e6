"""The learn research (qeu_vlm.research): the profile and its report, the ablation, the vision warm-up, the
training options, the probes."""
import json
from dataclasses import replace
from functools import partial

import numpy as np
import pytest
import torch

from qeu_vlm.config import Config
from qeu_vlm.conversation import images_of
from qeu_vlm.research.hooks import Ablated, ablate, fine_tune, optimizer_with_vision_rate, time_budget
from qeu_vlm.research.learn import LearnSettings, learn_report, learn_run
from qeu_vlm.tools.steps import loadable, prepare
from qeu_vlm.training import train

pytestmark = pytest.mark.slow          # trains, or runs commands end to end


@pytest.fixture
def prepared(twin_dir, tmp_path):
    """A smoke run on the test twin, its conversations zero-shot."""
    cfg = replace(Config(run_dir=str(tmp_path), data=str(twin_dir / "dataset"), pools=str(twin_dir / "drive"),
                         one_shot_first=0).smoke(), n_eval=4, eval_steps=0, save_steps=1000)
    return cfg, prepare(cfg)


def test_train_runs_the_warm_up_inside_the_time_budget(prepared):
    cfg, p = prepared
    cfg = replace(cfg, max_steps=50)
    fine_tune(cfg, LearnSettings(vision_warmup_steps=5, time_budget_s=3600), p)
    warm = json.loads((p.run / "vision_warmup.json").read_text())
    stats = json.loads((p.run / "train_stats.json").read_text())
    assert warm["log"][-1]["step"] == 5 and warm["seconds"] > 0 and stats["steps"] == 50
    assert (p.run / "plan.txt").read_text().startswith(f"token budget: {len(p.train_convs)} samples")


def test_time_budget_stops_training_and_stats_are_written(setup, tmp_path):
    cfg, _, _, convs = setup
    cfg = replace(loadable(cfg, tmp_path), max_steps=50, eval_steps=0, save_steps=1000, loss_on="final")
    train(cfg, convs[:8], [], tmp_path, callbacks=[time_budget(0.01)])
    stats = json.loads((tmp_path / "train_stats.json").read_text())
    assert stats["steps"] < 50 and stats["device"] == "cpu" and stats["tokens_per_sample"] > 100


def test_vision_learning_rate_gives_the_tower_its_own_scheduled_rate(setup, tmp_path):
    from transformers import TrainerCallback

    cfg, _, _, convs = setup
    cfg = replace(loadable(cfg, tmp_path), max_steps=3, eval_steps=0, save_steps=1000, loss_on="final",
                  learning_rate=1e-3, lr_schedule="linear", warmup_steps=0)
    seen = []

    class Rates(TrainerCallback):
        def on_step_begin(self, args, state, control, model=None, optimizer=None, **kw):
            names = {id(p): n for n, p in model.named_parameters()}
            seen.append({("visual" in names[id(g["params"][0])], g["lr"]) for g in optimizer.param_groups})

    t = train(cfg, convs[:8], [], tmp_path, callbacks=[Rates()],
              optimizer=partial(optimizer_with_vision_rate, vision_lr=4e-3))
    assert seen[0] == {(True, 4e-3), (False, 1e-3)}                    # each group at its own peak
    assert {v for v, _ in seen[1]} == {True, False} and {r for _, r in seen[1]} == {4e-3 * 2 / 3, 1e-3 * 2 / 3}
    grouped = sum(len(g["params"]) for g in t.optimizer.param_groups)
    assert grouped == sum(1 for p in t.model.parameters() if p.requires_grad)   # every weight, once


def test_ablations_remove_or_replace_the_test_image(prepared):
    cfg, p = prepared
    ablated = Ablated.of(replace(p, cfg=replace(cfg, image_size=(224, 154))), "reference-as-test")
    for conv in (ablated.train_convs[0], ablated.infer["zero"][0]):           # training and inspection alike
        ref, test = images_of(conv)
        assert ref.size == (224, 154) and np.array_equal(np.asarray(ref), np.asarray(test))   # no defect left
    plain = p.train_convs[0]
    assert ablated.train_convs[0]["messages"][-1] == plain["messages"][-1]    # the answer stays the record's
    assert len(images_of(ablate(plain, "no-reference"))) == 1 and len(images_of(plain)) == 2   # the input untouched
    with pytest.raises(ValueError, match="unknown ablation 'blank'"):
        ablate(plain, "blank")


def test_learn_model_has_balanced_modalities(tmp_path):
    from PIL import Image

    from qeu_vlm.offline.tiny_model import build_tiny_vlm, load_tiny_vlm

    build_tiny_vlm(tmp_path, size="learn", max_pixels=224 * 168)
    model, proc = load_tiny_vlm(tmp_path)
    assert 3.5e6 < sum(p.numel() for p in model.parameters()) < 4.5e6          # the issue's ~4M
    x = proc.image_processor(images=[Image.new("RGB", (224, 154), (200, 30, 30))], return_tensors="pt")
    with torch.no_grad():
        feats = model.model.get_image_features(x["pixel_values"], x["image_grid_thw"])
    feats = torch.cat(list(getattr(feats, "pooler_output", feats)))
    text = model.model.get_input_embeddings().weight.norm(dim=-1).mean()
    assert 0.3 < (feats.norm(dim=-1).mean() / text).item() < 3.0


def test_learn_probe_scores_the_model_while_it_trains(twin_dir, tmp_path):
    from qeu_vlm.research import probe

    log = probe.main(["p", "balance_judgement=True", "vision_warmup_steps=3", "n_inspect=12", "logging_steps=1",
                            "--steps", "2",
                            "--every", "1", "--n", "12", "--root", str(tmp_path), "--twin", str(twin_dir)])
    assert [e["step"] for e in log] == [1, 2]
    assert all(0 <= e["judgement"] <= 1 for e in log)        # 12 records: both classes, so a balanced accuracy
    assert log[-1]["train_loss"] is not None                   # the loss logged before the probe (step 1's)
    saved = (tmp_path / "p" / "probe_log.json").read_text()
    assert '"balance_judgement": true' in saved and '"step": 2' in saved


def test_localisation_attempts_keep_the_learn_profiles_image_statistics(tmp_path):
    from qeu_vlm.research.localization import ATTEMPTS, learn_config

    profile = learn_run(tmp_path, twin_look="schematic")[1].tiny_overrides
    cfg, lab = learn_config(tmp_path, "twin", **ATTEMPTS["mrope-width"][1])
    assert lab.tiny_overrides == {**profile, "rope_theta": 100.0, "mrope_section": [2, 4, 10]}
    untouched = learn_run(tmp_path, twin_look="schematic")[1].tiny_overrides == profile
    assert cfg.data == "twin/dataset" and untouched
    # attempts run as they ran: the first profile's schematic twin and clock, without the warm-up or with its 500
    assert lab.vision_warmup_steps == 0 and cfg.twin_look == "schematic" and lab.time_budget_s == 600
    warm = learn_config(tmp_path, "t", **ATTEMPTS["warmup-30"][1])[1]
    assert (warm.vision_warmup_steps, warm.time_budget_s, warm.start, warm.balance_judgement) == (500, 1800, "scratch",
                                                                                                  False)


def test_pooling_probe_trains_the_vision_tower_under_each_pooling(twin_dir):
    from qeu_vlm.research import pooling_probe

    logs = {pool: pooling_probe.main(["--pool", pool, "--steps", "2", "--every", "1", "--n", "12", "--threads", "1",
                                      "--size", "112x77", "--twin", str(twin_dir)]) for pool in pooling_probe.POOLS}
    for log in logs.values():
        assert [e["step"] for e in log] == [1, 2]
        assert all(0 <= e["balanced_accuracy"] <= 1 and e["loss"] > 0 for e in log)
    first = {pool: log[0]["loss"] for pool, log in logs.items()}  # same seed, same batch: only the pooling differs
    assert first["max"] != first["mean"]
    assert abs(first["attn"] - first["mean"]) < 0.01     # a softmax query starts out as an average of the tokens


def test_learn_command_writes_the_side_by_side_report(tmp_path):
    from qeu_vlm.research.learn import main

    out = tmp_path / "learn"
    assert main(["--out", str(out), "--n-train", "80", "--n-test", "12", "--steps", "4", "--warmup-steps", "10"]) == 0
    text = (out / "learn_report.md").read_text()
    for row in (
        "| learn |",
        "| ablation |",
        "| classic baseline |",
        "Answer distribution",
        "judgement_balanced_accuracy <= 0.6",
    ):
        assert row in text
    stats = json.loads((out / "train_stats.json").read_text())
    assert stats["steps"] <= 4 and (out / "ablation" / "predictions_finetuned_zero.jsonl").exists()
    warm = json.loads((out / "vision_warmup.json").read_text())
    assert warm["log"][-1]["step"] == warm["steps"] == 10 and f"| learn | {warm['steps']} (" in text
    assert f"| {warm['seconds']} | {stats['steps']} |" in text and "| warm-up s |" in text
    saved = json.loads((out / "config.json").read_text())
    assert saved["dst_fraction"] == 1.0 and saved["twin_look"] == "rendered" and "rendered twin" in text


@pytest.mark.parametrize("learn, ablation, says", [
    (0.97, 0.50, "uses the test image"),
    (0.79, 0.50, "reads the test image (0.790 with it, 0.500 without), though it has not reached its target"),
    (0.50, 0.50, "proves nothing while the learn run itself is at chance level"),
    (0.97, 0.90, "does not use the test image"),
])
def test_learn_report_judges_the_ablation_against_the_learn_run(learn, ablation, says):
    def run(judgement):
        return {"scores": {"format_valid": 1.0, "judgement_balanced_accuracy": judgement, "mode_accuracy": 0.3,
                           "position_exact": 0.04, "within_one_pin": 0.2, "distinct_positions": 1},
                "train": {"steps": 10, "runtime_s": 1.0}, "loss": {"last_train_loss": 0.1},
                "answer_distribution": {"passed": 1}, "test_records": 1}

    text = learn_report({"learn": run(learn), "ablation": run(ablation), "seconds": 1.0})
    assert says in text.split("- ablation")[1].splitlines()[0]
