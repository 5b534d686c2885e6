"""The benchmark commands run end to end (figures are checked by reading them, not by timed tests)."""
import re

import pytest

from qeu_vlm.planner import ARCHS
from qeu_vlm.presets import PRESETS
from qeu_vlm.random_models import random_config

from benchmarks import cpu, gpu


def test_cpu_benchmark_prints_every_figure(capsys):
    rows = cpu.main(["--quick"])
    names = [r[0] for r in rows]
    assert names == ["twin generation + write", "conversion", "collator (TRL + loss mask)", "tiny-model training",
                     "inspection, batched 16 vs one-by-one", "smoke replay (main job)"]
    out = capsys.readouterr().out
    assert re.search(r"machine: .*cores.*date \d{4}-\d\d-\d\d", out)
    assert re.search(r"\| inspection, batched 16 vs one-by-one \| 8 samples \| [\d.]+ s vs [\d.]+ s \| [\d.]+x \|", out)
    assert re.search(r"[\d.]+ steps/s, [\d.]+ samples/s", out)


def test_gpu_script_runs_on_cpu_with_the_tiny_model(capsys, tmp_path):
    rows = dict(gpu.main(["--tiny", "--backends", "hf,unsloth", "--steps", "2", "--out", str(tmp_path)]))
    for shot in ("zero", "one"):
        hf = rows[f"tiny-{shot}-hf"]
        assert hf["steps"] == 2 and hf["samples/s"] > 0 and hf["tokens/s"] > 0 and "error" not in hf
        assert "unsloth" in rows[f"tiny-{shot}-unsloth"]["error"].lower()      # says why it cannot run here
    assert "device: CPU" in capsys.readouterr().out


@pytest.mark.parametrize("preset", list(PRESETS))
def test_random_models_build_each_presets_real_architecture(preset):
    """The random model has the published parameter count (config only: weights on the meta device)."""
    import torch
    from transformers import AutoModelForImageTextToText

    with torch.device("meta"):
        model = AutoModelForImageTextToText.from_config(random_config(preset))
    billions = sum(p.numel() for p in model.parameters()) / 1e9
    assert abs(billions / ARCHS[preset].params_b - 1) < 0.05, (preset, billions)


def test_gpu_script_trains_every_family_at_toy_size(tmp_path):
    rows = dict(gpu.main(["--presets", "qwen3-vl-2b,llama-3.2-11b-vision,pixtral-12b", "--shrink", "--backends", "hf",
                          "--steps", "1", "--out", str(tmp_path)]))
    for preset in ("qwen3-vl-2b", "llama-3.2-11b-vision"):
        for shot in ("zero", "one"):
            r = rows[f"{preset}-{shot}-hf"]
            assert "error" not in r and r["steps"] == 1 and "planner GiB" not in r, r   # no estimate for toy sizes
    try:
        import torchvision  # noqa: F401
    except ImportError:                     # Pixtral's processor needs torchvision: reported, not guessed
        assert "torchvision" in rows["pixtral-12b-zero-hf"]["error"].lower()
    else:
        assert "error" not in rows["pixtral-12b-zero-hf"]


def test_learn_probe_scores_the_model_while_it_trains(twin_dir, tmp_path):
    from benchmarks import learn_probe

    log = learn_probe.main(["p", "balance_judgement=True", "vision_warmup_steps=3", "n_inspect=12", "logging_steps=1",
                            "--steps", "2",
                            "--every", "1", "--n", "12", "--root", str(tmp_path), "--twin", str(twin_dir)])
    assert [e["step"] for e in log] == [1, 2]
    assert all(0 <= e["judgement"] <= 1 for e in log)        # 12 records: both classes, so a balanced accuracy
    assert log[-1]["train_loss"] is not None                   # the loss logged before the probe (step 1's)
    saved = (tmp_path / "p" / "probe_log.json").read_text()
    assert '"balance_judgement": true' in saved and '"step": 2' in saved


def test_localisation_attempts_keep_the_learn_profiles_image_statistics(tmp_path):
    from qeu_vlm.config import Config

    from benchmarks.localization import ATTEMPTS, learn_config

    profile = Config().learn().tiny_overrides
    cfg = learn_config(tmp_path, "twin", **ATTEMPTS["mrope-width"][1])
    assert cfg.tiny_overrides == {**profile, "rope_theta": 100.0, "mrope_section": [2, 4, 10]}
    assert cfg.data == "twin/dataset" and Config().learn().tiny_overrides == profile     # the profile is untouched
    # attempts made before the vision warm-up became the default still run without it
    assert cfg.vision_warmup_steps == 0
    assert learn_config(tmp_path, "t", **ATTEMPTS["warmup-30"][1]).vision_warmup_steps == 500


def test_pooling_probe_trains_the_vision_tower_under_each_pooling(twin_dir):
    from benchmarks import pooling_probe

    logs = {pool: pooling_probe.main(["--pool", pool, "--steps", "2", "--every", "1", "--n", "12", "--threads", "1",
                                      "--size", "112x77", "--twin", str(twin_dir)]) for pool in pooling_probe.POOLS}
    for log in logs.values():
        assert [e["step"] for e in log] == [1, 2]
        assert all(0 <= e["balanced_accuracy"] <= 1 and e["loss"] > 0 for e in log)
    first = {pool: log[0]["loss"] for pool, log in logs.items()}        # same seed, same batch: only the pooling differs
    assert first["max"] != first["mean"]
    assert abs(first["attn"] - first["mean"]) < 0.01     # a softmax query starts out as an average of the tokens
