import json
from dataclasses import replace

import pytest
import torch
from PIL import Image

from qeu_vlm.answer import Answer, format_answer
from qeu_vlm.config import Config
from qeu_vlm.model import load_model
from qeu_vlm.training import train
from qeu_vlm.vision_warmup import WarmupError, judgement_examples, vision_tower, warm_up_vision


def _conv(image, judgement):
    answer = format_answer(Answer("CYLN_DST", 27, judgement, "Y-plus", "X:3, Y:C"))
    return {"messages": [{"role": "user", "content": [{"type": "text", "text": "inspect"},
                                                      {"type": "image", "image": Image.new("RGB", (56, 56))},
                                                      {"type": "image", "image": image}]},
                         {"role": "assistant", "content": [{"type": "text", "text": answer}]}], "shot": "zero"}


@pytest.fixture(scope="module")
def smoke_model(tmp_path_factory):
    return load_model(Config().smoke(), tmp_path_factory.mktemp("warm"), "hf")


def test_warm_up_teaches_the_tower_blatant_images_and_leaves_the_language_model_alone(smoke_model):
    model, proc = smoke_model
    # two sizes, independent of the label: each image's tokens are pooled apart
    convs = [_conv(Image.new("RGB", (56, 56) if i % 4 < 2 else (84, 56), (255, 255, 255) if i % 2 else (0, 0, 0)),
                   "defective" if i % 2 else "passed") for i in range(16)]
    tower = vision_tower(model)
    lm_before = {n: p.clone() for n, p in model.named_parameters() if "visual" not in n}
    tower_before = {n: p.clone() for n, p in tower.named_parameters()}
    out = warm_up_vision(model, proc, convs, steps=100, lr=1e-3, batch_size=8)
    assert out["log"][-1]["step"] == 100 and out["log"][-1]["accuracy"] == 1.0 and out["seconds"] > 0
    assert out["log"][-1]["loss"] < out["log"][0]["loss"]
    assert all(torch.equal(p, lm_before[n]) for n, p in model.named_parameters() if "visual" not in n)
    assert any(not torch.equal(p, tower_before[n]) for n, p in tower.named_parameters())


def test_test_image_is_the_last_image_and_bad_conversations_are_named():
    white = Image.new("RGB", (56, 56), (255, 255, 255))
    assert judgement_examples([_conv(white, "defective")]) == [(white, True)]
    no_answer = _conv(white, "passed")
    no_answer["messages"] = no_answer["messages"][:1]
    with pytest.raises(WarmupError, match="conversation 1: needs a test image"):
        judgement_examples([_conv(white, "passed"), no_answer])
    unreadable = _conv(white, "maybe")
    with pytest.raises(WarmupError, match="conversation 0: its answer has no passed/defective judgement"):
        judgement_examples([unreadable])
    with pytest.raises(WarmupError, match="has no 'visual' module"):
        vision_tower(torch.nn.Linear(2, 2))


def test_a_frozen_tower_is_an_error_not_a_silent_no_op(smoke_model):
    model, proc = smoke_model
    tower = vision_tower(model)
    for p in tower.parameters():
        p.requires_grad_(False)
    try:
        with pytest.raises(WarmupError, match="no trainable weights"):
            warm_up_vision(model, proc, [_conv(Image.new("RGB", (56, 56)), "passed")], steps=1, lr=1e-3)
    finally:
        for p in tower.parameters():
            p.requires_grad_(True)


def test_train_runs_the_warm_up_inside_the_time_budget(twin, twin_dir, tmp_path):
    from qeu_vlm.conversation import convert, shot_plan
    from qeu_vlm.data import load_pools

    recs = twin.splits["CYLNimages_train_1015"][:8]
    convs = convert(recs, load_pools(twin_dir / "drive"), shot_plan(8, one_shot_first=0), seed=0)
    cfg = replace(Config().smoke(), max_steps=50, time_budget_s=3600, eval_steps=0, save_steps=1000,
                  vision_warmup_steps=5)
    train(cfg, convs, [], tmp_path)
    warm = json.loads((tmp_path / "vision_warmup.json").read_text())
    stats = json.loads((tmp_path / "train_stats.json").read_text())
    assert warm["log"][-1]["step"] == 5 and stats["vision_warmup_s"] == warm["seconds"]
    assert stats["steps"] == 50
