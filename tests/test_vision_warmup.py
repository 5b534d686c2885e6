"""The stages that let a from-scratch model learn on CPU: the vision warm-up (ended on a criterion) and the
judgement-first curriculum."""
from types import SimpleNamespace

import pytest
import torch
from PIL import Image

from qeu_vlm.answer import Answer, format_answer
from qeu_vlm.batching import make_collator
from qeu_vlm.conversation import with_image_list
from qeu_vlm.tools.vision_warmup import WarmupError, judgement_examples, judgement_first, vision_tower, warm_up_vision


def _conv(image, judgement):
    answer = format_answer(Answer("CYLN_DST", 27, judgement, "Y-plus", "X:3, Y:C"))
    return {"messages": [{"role": "user", "content": [{"type": "text", "text": "inspect"},
                                                      {"type": "image", "image": Image.new("RGB", (56, 56))},
                                                      {"type": "image", "image": image}]},
                         {"role": "assistant", "content": [{"type": "text", "text": answer}]}], "shot": "zero"}


def test_warm_up_teaches_the_tower_blatant_images_and_leaves_the_language_model_alone(smoke_model):
    model, proc = smoke_model
    # two sizes, independent of the label: each image's tokens are pooled apart
    convs = [_conv(Image.new("RGB", (56, 56) if i % 4 < 2 else (84, 56), (255, 255, 255) if i % 2 else (0, 0, 0)),
                   "defective" if i % 2 else "passed") for i in range(16)]
    tower = vision_tower(model)
    lm_before = {n: p.clone() for n, p in model.named_parameters() if "visual" not in n}
    tower_before = {n: p.clone() for n, p in tower.named_parameters()}
    out = warm_up_vision(model, proc, convs, max_steps=100, lr=1e-3, batch_size=8)
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
            warm_up_vision(model, proc, [_conv(Image.new("RGB", (56, 56)), "passed")], max_steps=1, lr=1e-3)
    finally:
        for p in tower.parameters():
            p.requires_grad_(True)


def _blatant(n=16):
    return [_conv(Image.new("RGB", (56, 56), (255, 255, 255) if i % 2 else (0, 0, 0)),
                  "defective" if i % 2 else "passed") for i in range(n)]


def test_the_warm_up_ends_on_its_criterion_or_at_its_step_cap(smoke_model):
    model, proc = smoke_model
    easy = warm_up_vision(model, proc, _blatant(), max_steps=40, lr=1e-3, until=0.01, window=3)
    assert easy["stopped"] == "criterion" and easy["steps"] == 3 and easy["log"][-1]["step"] == 3
    capped = warm_up_vision(model, proc, _blatant(), max_steps=4, lr=1e-3, until=1.0, window=200)
    assert capped["stopped"] == "max_steps" and capped["steps"] == 4 and capped["log"][-1]["step"] == 4
    for bad in (dict(max_steps=0), dict(max_steps=5, until=1.5), dict(max_steps=5, window=0)):
        with pytest.raises(WarmupError, match="max_steps and window must be"):
            warm_up_vision(model, proc, _blatant(), lr=1e-3, **bad)


def test_judgement_first_curriculum_cuts_the_final_answer_before_its_mode(setup):
    cfg, model, proc, convs = setup
    cfg.loss_on = "assistant"
    mask = make_collator(cfg, model, proc, "hf")
    one = with_image_list(convs[0])
    answer, star = one["messages"][-1]["content"][0]["text"], one["messages"][1]["content"][0]["text"]
    whole = star + "<|im_end|>" + answer + "<|im_end|>"

    def supervised(collator):
        b = collator([one])
        return proc.tokenizer.decode(b["input_ids"][0][b["labels"][0] != -100])

    curriculum = judgement_first(mask, steps=3)       # the trainer's collator and one of its callbacks
    assert supervised(curriculum) == whole            # off until training begins (the length pre-flight sees all)
    curriculum.on_train_begin(None, SimpleNamespace(global_step=0), None)
    early = supervised(curriculum)
    judgement_line = answer[:answer.index("- defect mode")]
    assert early.startswith(star + "<|im_end|>" + judgement_line) and "defect mode->" not in early
    assert len(early) <= len(star + "<|im_end|>" + judgement_line) + 2      # at most the "- " of the next line
    curriculum.on_step_begin(None, SimpleNamespace(global_step=2), None)
    assert supervised(curriculum) == early
    curriculum.on_step_begin(None, SimpleNamespace(global_step=3), None)
    assert supervised(curriculum) == whole and supervised(mask) == whole
