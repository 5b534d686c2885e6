"""The vision warm-up: each image token learns which pin's mark it holds, from a record's defect box or a red star."""
import pytest
import torch
from PIL import Image, ImageDraw

from qeu_vlm.domain import ALL_ADDRESSES, DEFECT_MODES
from qeu_vlm.tools.vision_warmup import (Mark, WarmupError, freeze, image_tokens, marks_from_records, token_of,
                                         vision_tower, warm_up_tokens)


COLOURS = [(255, 255, 255), (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255)]


def _dotted(i: int) -> Mark:
    """A black 112x84 image (4x3 tokens at the smoke model's 28-px merge) with a dot in one of six tokens; the dot's
    colour is its 'pin'. The head must find the dot's token (the others hold no mark) and read it."""
    img = Image.new("RGB", (112, 84))
    k, pin = i % 6, (i // 6) % 6
    col, row = k % 3, 2 * (k // 3)
    x, y = 28 * col + 14, 28 * row + 14
    ImageDraw.Draw(img).ellipse([x - 7, y - 7, x + 7, y + 7], fill=COLOURS[pin])
    if i % 7 == 6:
        return Mark(img)                       # some images without a mark
    return Mark(img, (x / 112, y / 84), pin, 1 + pin % len(DEFECT_MODES))


def test_the_warm_up_teaches_each_token_where_the_mark_is_and_leaves_the_language_model_alone(smoke_model):
    model, proc = smoke_model
    marks = [_dotted(i) for i in range(72)]
    tower = vision_tower(model)
    lm_before = {n: p.clone() for n, p in model.named_parameters() if "visual" not in n}
    tower_before = {n: p.clone() for n, p in tower.named_parameters()}
    out = warm_up_tokens(model, proc, marks, steps=160, lr=3e-3, batch_size=8)
    assert out["steps"] == 160 and out["log"][-1]["step"] == 160 and out["seconds"] > 0
    assert out["log"][-1]["loss"] < out["log"][0]["loss"]
    assert out["accuracy"] >= 0.9, out["log"]              # chance: 1 in 6 colours, in 1 of 12 tokens
    assert all(torch.equal(p, lm_before[n]) for n, p in model.named_parameters() if "visual" not in n)
    assert any(not torch.equal(p, tower_before[n]) for n, p in tower.named_parameters())
    feats, grids = image_tokens(tower, proc, [marks[0].image, Image.new("RGB", (56, 56))])
    assert grids == [(3, 4), (2, 2)] and [len(f) for f in feats] == [12, 4]      # images of two sizes


def test_a_records_mark_is_its_defect_box_centre_and_a_bad_record_is_named(twin, twin_dir):
    records = twin.splits["CYLNimages_train_1015"][:12]
    marks = marks_from_records(records, size=(224, 154))
    assert all(m.image.size == (224, 154) for m in marks)
    for m, r in zip(marks, records):
        if r["dir"] == "OK":
            assert (m.where, m.pin, m.mode) == (None, None, 0)
        else:
            assert ALL_ADDRESSES[m.pin].canonical == r["position"] and 0 < m.where[0] < 1 and 0 < m.where[1] < 1
            assert m.mode >= 1
    from qeu_vlm.conversation import convert, images_of
    from qeu_vlm.data import load_pools, load_records

    ds, _ = load_records(str(twin_dir / "dataset"), split="CYLNimages_train_1015")
    pools = load_pools(twin_dir / "drive")
    ds = ds.select(range(12))
    tests = [images_of(c)[-1] for c in convert(ds, pools, ["zero"] * 12, size=(224, 154))]
    given = marks_from_records(ds, (224, 154), tests)       # the conversation's images, no decoding again
    assert [m.image for m in given] == tests
    assert [(m.where, m.pin, m.mode) for m in given] == [(m.where, m.pin, m.mode) for m in marks]
    with pytest.raises(WarmupError, match="11 images for 12 records"):
        marks_from_records(ds, (224, 154), tests[:11])
    broken = [dict(records[0]), dict(records[1], bbox_str="Y-plus: nowhere")]
    with pytest.raises(WarmupError, match="record 1: "):
        marks_from_records(broken)


def test_token_of_is_row_major_and_clamped():
    assert token_of((0.0, 0.0), (6, 8)) == 0 and token_of((1.0, 1.0), (6, 8)) == 47
    assert token_of((0.5, 0.0), (6, 8)) == 4 and token_of((0.0, 0.5), (6, 8)) == 24


def test_bad_warm_up_input_is_an_error_before_any_work(smoke_model):
    model, proc = smoke_model
    blank = [Mark(Image.new("RGB", (56, 56)))]
    with pytest.raises(WarmupError, match="none of the 1 warm-up images has a mark"):
        warm_up_tokens(model, proc, blank, steps=1, lr=1e-3)
    with pytest.raises(WarmupError, match="steps and batch_size must be >= 1"):
        warm_up_tokens(model, proc, [_dotted(0)], steps=0, lr=1e-3)
    with pytest.raises(WarmupError, match="has no 'visual' module"):
        vision_tower(torch.nn.Linear(2, 2))
    tower = vision_tower(model)
    for p in tower.parameters():
        p.requires_grad_(False)
    try:
        with pytest.raises(WarmupError, match="no trainable weights"):
            warm_up_tokens(model, proc, [_dotted(0)], steps=1, lr=1e-3)
    finally:
        for p in tower.parameters():
            p.requires_grad_(True)


def test_a_frozen_part_of_the_tower_is_left_as_it_was(smoke_model):
    model, proc = smoke_model
    tower = vision_tower(model)
    before = {n: p.detach().clone() for n, p in tower.named_parameters()}
    with pytest.raises(WarmupError, match="no part 'patch_embedding'.*patch_embed"):
        freeze(model, ["blocks", "patch_embedding"])
    assert all(p.requires_grad for p in tower.parameters())          # a bad name froze nothing
    freeze(model, ["patch_embed"])
    try:
        warm_up_tokens(model, proc, [_dotted(i) for i in range(6)], steps=3, lr=1e-3, batch_size=4)
        changed = {n.split(".")[0] for n, p in tower.named_parameters() if not torch.equal(p, before[n])}
        assert changed == {"blocks", "merger"}
    finally:
        tower.requires_grad_(True)
        with torch.no_grad():
            for n, p in tower.named_parameters():
                p.copy_(before[n])
