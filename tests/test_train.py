import json
import math

import pytest
import torch

from qeu_vlm.config import Config
from qeu_vlm.conversation import convert, with_image_list, shot_plan
from qeu_vlm.data import load_pools
from qeu_vlm.backend import BackendError, choose
from qeu_vlm.batching import LossMask, TrainingError, make_collator, preflight
from qeu_vlm.model import load_model
from qeu_vlm.presets import get_preset
from qeu_vlm.random_models import family_tokenizer
from qeu_vlm.training import train


@pytest.fixture(scope="module")
def loaded(twin, twin_dir, tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    model, proc = load_model(Config().smoke(), run, "hf")
    pools = load_pools(twin_dir / "drive")
    recs = twin.splits["CYLNimages_train_1015"][:12]
    convs = convert(recs, pools, shot_plan(12, one_shot_first=4), seed=0)
    return run, model, proc, convs


@pytest.fixture
def setup(loaded):
    """A fresh smoke config for each test (tests change it), with the model and conversations loaded once."""
    return (Config().smoke(), *loaded)


def _supervised_text(cfg, model, proc, sample, mode):
    cfg.loss_on = mode
    b = make_collator(cfg, model, proc, "hf")([sample])
    ids, lab = b["input_ids"][0], b["labels"][0]
    return proc.tokenizer.decode(ids[lab != -100])


def test_loss_masking_on_one_shot_sample(setup):
    cfg, _, model, proc, convs = setup
    one = with_image_list(convs[0])
    assert len(one["images"]) == 3
    final = _supervised_text(cfg, model, proc, one, "final")
    assistant = _supervised_text(cfg, model, proc, one, "assistant")
    everything = _supervised_text(cfg, model, proc, one, "all")
    answer = one["messages"][-1]["content"][0]["text"]
    star = one["messages"][1]["content"][0]["text"]
    assert final == answer + "<|im_end|>"
    assert assistant == star + "<|im_end|>" + answer + "<|im_end|>"
    assert "<|image_pad|>" in everything and "visual inspector" in everything
    with pytest.raises(TrainingError, match="loss mode"):
        LossMask(None, proc.tokenizer, "prompt")


def test_judgement_first_curriculum_cuts_the_final_answer_before_its_mode(setup):
    from qeu_vlm.learn_hooks import curriculum

    cfg, _, model, proc, convs = setup
    cfg.loss_on = "assistant"
    mask = make_collator(cfg, model, proc, "hf")
    one = with_image_list(convs[0])
    answer, star = one["messages"][-1]["content"][0]["text"], one["messages"][1]["content"][0]["text"]
    callback = curriculum(mask, steps=3)
    b = mask([one])
    early = proc.tokenizer.decode(b["input_ids"][0][b["labels"][0] != -100])
    judgement_line = answer[:answer.index("- defect mode")]
    assert early.startswith(star + "<|im_end|>" + judgement_line) and "defect mode->" not in early
    assert len(early) <= len(star + "<|im_end|>" + judgement_line) + 2      # at most the "- " of the next line
    from types import SimpleNamespace

    callback.on_step_begin(None, SimpleNamespace(global_step=2), None)
    assert mask.cut is not None
    callback.on_step_begin(None, SimpleNamespace(global_step=3), None)
    b = mask([one])
    assert proc.tokenizer.decode(b["input_ids"][0][b["labels"][0] != -100]) == star + "<|im_end|>" + answer + "<|im_end|>"


def test_preflight_errors(setup):
    cfg, _, model, proc, convs = setup
    cfg.loss_on = "final"
    col = make_collator(cfg, model, proc, "hf")
    first, fifth = with_image_list(convs[0]), with_image_list(convs[5])
    n = preflight(col, [first], [0], None)[0]
    with pytest.raises(TrainingError, match=rf"train record 7: {n} tokens exceed max_length=100.*at least {n}"):
        preflight(col, [first], [7], 100)
    no_answer = dict(fifth, messages=fifth["messages"][:-1])
    with pytest.raises(TrainingError, match="record 5: every label is masked"):
        preflight(col, [no_answer], [5], None)
    with pytest.raises(TrainingError, match="nothing to evaluate"):
        train(cfg, convs, [], setup[1])


def test_collators_take_placeholders_and_an_image_list(setup):
    conv = setup[4][0]
    assert sum("image" in c for m in conv["messages"] for c in m["content"]) == 3        # inline in the conversation
    h = with_image_list(conv)
    assert len(h["images"]) == 3 and all(c == {"type": "image"} for m in h["messages"] for c in m["content"]
                                         if c["type"] == "image")


def test_backend_choice():
    assert choose("hf") == "hf"
    if not torch.cuda.is_available():
        assert choose("auto") == "hf"
        with pytest.raises(BackendError, match="no CUDA GPU.*backend='hf'"):
            choose("unsloth")
    with pytest.raises(BackendError, match="unknown backend 'fast'"):
        choose("fast")
    with pytest.raises(KeyError, match="known presets: qwen2.5-vl-3b"):
        get_preset("gpt-vision")


def _weights(run):
    from safetensors.torch import load_file
    return load_file(str(run / "adapter" / "model.safetensors"))


def test_train_eval_checkpoint_and_resume_equals_uninterrupted(setup, tmp_path):
    cfg, _, _, _, convs = setup
    cfg.loss_on = "final"
    full = tmp_path / "full"
    full.mkdir()
    t = train(cfg, convs[:8], convs[8:], full)
    log = json.loads((full / "log_history.json").read_text())
    assert [h["step"] for h in log if "eval_loss" in h] == [2, 4]
    assert sorted(p.name for p in (full / "checkpoints").glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    assert all(math.isfinite(h["loss"]) for h in log if "loss" in h) and len([h for h in log if "loss" in h]) == 4
    # A disconnect right after checkpoint-2 is written; a fresh call resumes from it.
    from transformers import TrainerCallback

    class Disconnect(TrainerCallback):
        def on_save(self, args, state, control, **kw):
            if state.global_step == 2:
                raise ConnectionError("runtime disconnected")

    cut = tmp_path / "cut"
    cut.mkdir()
    with pytest.raises(ConnectionError):
        train(cfg, convs[:8], convs[8:], cut, callbacks=[Disconnect()])
    assert not (cut / "adapter").exists()
    resumed = train(cfg, convs[:8], convs[8:], cut)
    assert resumed.state.global_step == t.state.global_step == 4
    a, b = _weights(full), _weights(cut)
    assert a.keys() == b.keys()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_time_budget_stops_training_and_stats_are_written(setup, tmp_path):
    from dataclasses import replace

    cfg, _, _, _, convs = setup
    cfg = replace(cfg, max_steps=50, time_budget_s=0.01, eval_steps=0, save_steps=1000, loss_on="final")
    train(cfg, convs[:8], [], tmp_path)
    stats = json.loads((tmp_path / "train_stats.json").read_text())
    assert stats["steps"] < 50 and stats["device"] == "cpu" and stats["tokens_per_sample"] > 100
    assert (tmp_path / "plan.txt").read_text().startswith("token budget: 8 samples")


def test_learn_model_has_balanced_modalities(tmp_path):
    from qeu_vlm.tiny_model import build_tiny_vlm, load_tiny_vlm
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


@pytest.mark.parametrize("family, end", [("mllama", "<|eot_id|>"), ("pixtral", "</s>")])
def test_loss_mask_reads_other_families_templates(setup, family, end):
    tok = family_tokenizer(family)                   # the offline tokenizer with the family's chat template
    one = with_image_list(setup[4][0])                       # a one-shot conversation: star turn, then the inspection turn
    ids = tok.apply_chat_template(one["messages"], tokenize=True, return_dict=True)["input_ids"]
    batch = {"input_ids": torch.tensor([ids]), "labels": torch.tensor([ids])}
    answer, star = one["messages"][-1]["content"][0]["text"], one["messages"][1]["content"][0]["text"]
    for mode, want in (("final", answer + end), ("assistant", star + end + answer + end)):
        out = LossMask(lambda examples: dict(batch), tok, mode)([one])
        assert tok.decode(out["input_ids"][0][out["labels"][0] != -100]) == want


def test_vision_learning_rate_gives_the_tower_its_own_scheduled_rate(setup, tmp_path):
    from dataclasses import replace

    from transformers import TrainerCallback

    cfg, _, _, _, convs = setup
    cfg = replace(cfg, max_steps=3, eval_steps=0, save_steps=1000, loss_on="final", learning_rate=1e-3,
                  vision_learning_rate=4e-3, lr_schedule="linear", warmup_steps=0)
    seen = []

    class Rates(TrainerCallback):
        def on_step_begin(self, args, state, control, model=None, optimizer=None, **kw):
            names = {id(p): n for n, p in model.named_parameters()}
            seen.append({("visual" in names[id(g["params"][0])], g["lr"]) for g in optimizer.param_groups})

    t = train(cfg, convs[:8], [], tmp_path, callbacks=[Rates()])
    assert seen[0] == {(True, 4e-3), (False, 1e-3)}                    # each group at its own peak
    assert {v for v, _ in seen[1]} == {True, False} and {r for _, r in seen[1]} == {4e-3 * 2 / 3, 1e-3 * 2 / 3}
    grouped = sum(len(g["params"]) for g in t.optimizer.param_groups)
    assert grouped == sum(1 for p in t.model.parameters() if p.requires_grad)   # every weight, once
