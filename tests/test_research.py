"""The learn research (qeu_vlm.research): the profile and its report, the vision warm-up, the training options,
the probes."""
import json
from dataclasses import replace
from functools import partial

import pytest
import torch
from PIL import Image

from qeu_vlm.answer import Answer, format_answer
from qeu_vlm.batching import make_collator
from qeu_vlm.config import Config
from qeu_vlm.conversation import with_image_list
from qeu_vlm.model import load_model
from qeu_vlm.training import train
from qeu_vlm.research.hooks import extras
from qeu_vlm.research.learn import LearnSettings, learn_report, learn_run

pytestmark = pytest.mark.slow          # trains, or runs commands end to end


def test_train_runs_the_warm_up_inside_the_time_budget(twin, twin_dir, tmp_path):
    from qeu_vlm.conversation import convert, shot_plan
    from qeu_vlm.data import load_pools

    recs = twin.splits["CYLNimages_train_1015"][:8]
    convs = convert(recs, load_pools(twin_dir / "drive"), shot_plan(8, one_shot_first=0), seed=0)
    cfg = replace(Config().smoke(), max_steps=50, eval_steps=0, save_steps=1000)
    train(
        cfg, convs, [], tmp_path, extras=partial(extras, cfg, LearnSettings(vision_warmup_steps=5, time_budget_s=3600))
    )
    warm = json.loads((tmp_path / "vision_warmup.json").read_text())
    stats = json.loads((tmp_path / "train_stats.json").read_text())
    assert warm["log"][-1]["step"] == 5 and stats["vision_warmup_s"] == warm["seconds"]
    assert stats["steps"] == 50


def test_time_budget_stops_training_and_stats_are_written(setup, tmp_path):
    cfg, _, _, convs = setup
    cfg = replace(cfg, max_steps=50, eval_steps=0, save_steps=1000, loss_on="final")
    train(cfg, convs[:8], [], tmp_path, extras=partial(extras, cfg, LearnSettings(vision_warmup_steps=0,
                                                                                   time_budget_s=0.01)))
    stats = json.loads((tmp_path / "train_stats.json").read_text())
    assert stats["steps"] < 50 and stats["device"] == "cpu" and stats["tokens_per_sample"] > 100
    assert (tmp_path / "plan.txt").read_text().startswith("token budget: 8 samples")


def test_vision_learning_rate_gives_the_tower_its_own_scheduled_rate(setup, tmp_path):
    from transformers import TrainerCallback

    cfg, _, _, convs = setup
    cfg = replace(cfg, max_steps=3, eval_steps=0, save_steps=1000, loss_on="final", learning_rate=1e-3,
                  lr_schedule="linear", warmup_steps=0)
    lab = LearnSettings(vision_warmup_steps=0, time_budget_s=None, vision_learning_rate=4e-3)
    seen = []

    class Rates(TrainerCallback):
        def on_step_begin(self, args, state, control, model=None, optimizer=None, **kw):
            names = {id(p): n for n, p in model.named_parameters()}
            seen.append({("visual" in names[id(g["params"][0])], g["lr"]) for g in optimizer.param_groups})

    t = train(cfg, convs[:8], [], tmp_path, callbacks=[Rates()], extras=partial(extras, cfg, lab))
    assert seen[0] == {(True, 4e-3), (False, 1e-3)}                    # each group at its own peak
    assert {v for v, _ in seen[1]} == {True, False} and {r for _, r in seen[1]} == {4e-3 * 2 / 3, 1e-3 * 2 / 3}
    grouped = sum(len(g["params"]) for g in t.optimizer.param_groups)
    assert grouped == sum(1 for p in t.model.parameters() if p.requires_grad)   # every weight, once


def test_learn_model_has_balanced_modalities(tmp_path):
    from qeu_vlm.offline.tiny_model import build_tiny_vlm, load_tiny_vlm
    from PIL import Image

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
    assert (warm.vision_warmup_steps, warm.vision_warmup_until, warm.time_budget_s) == (500, None, 1800)


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
    # the vision warm-up ends on its criterion or its cap (10 here: too few steps for 0.98 on 80 records)
    warm = json.loads((out / "vision_warmup.json").read_text())
    assert warm["log"][-1]["step"] == warm["steps"] <= 10 and f"| learn | {warm['steps']} (" in text
    assert stats["vision_warmup_s"] > 0 and "| warm-up s |" in text
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
