"""The offline pretrained model: the command that makes it, and the shipped weights knowing where the star is."""
import json
from dataclasses import replace

import pytest

from qeu_vlm.domain import ALL_ADDRESSES
from qeu_vlm.offline.pretrain import (PRETRAINED, SMOKE, PretrainError, Recipe, mixed, pretrain, reference_images,
                                      star_accuracy, star_images)


@pytest.fixture(scope="module")
def shipped():
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    from qeu_vlm.model import load_processor

    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(PRETRAINED, dtype=torch.float32).eval()
    return model, load_processor(str(PRETRAINED))


def test_the_shipped_model_names_the_stars_pin_on_star_images_it_never_saw(shipped):
    model, processor = shipped
    stars = star_images(40, seed=1234, no_star=0.2)          # seeds the pretraining never drew
    refs = reference_images(4, seed=1235)
    alone = star_accuracy(model, processor, stars, mixed(stars, refs, 0, with_answer=False, two=False))
    after_reference = star_accuracy(model, processor, stars, mixed(stars, refs, 0, with_answer=False, two=True))
    for got in (alone, after_reference):
        assert got["star"] >= 0.9 and got["no_star"] >= 0.8 and got["distinct"] >= 15, got
    card = (PRETRAINED / "README.md").read_text()
    made = json.loads((PRETRAINED / "pretraining.json").read_text())
    assert "python -m qeu_vlm.offline.pretrain" in card and made["held_out"]["one image"]["star"] >= 0.9


def test_the_star_images_are_marked_where_the_star_is_drawn():
    import numpy as np

    for s in star_images(6, seed=7):
        x, y = s.mark.where
        px = np.asarray(s.mark.image, dtype=int)
        h, w = px.shape[:2]
        r, g, b = px[int(y * h), int(x * w)]
        assert r > 150 and g < 100 and b < 100, (s.image_type, s.mark.where)      # a red star sits there
        assert s.image_type in ("CYLN_DST", "CYLN_RAW") and s.answer.endswith(ALL_ADDRESSES[s.mark.pin].canonical)


@pytest.mark.slow
def test_the_pretraining_command_writes_a_model_that_reloads_and_answers(tmp_path):
    from qeu_vlm.generation import generate
    from qeu_vlm.offline.pretrain import main
    from qeu_vlm.offline.tiny_model import load_tiny_vlm

    out = tmp_path / "pretrained"
    assert main(["--smoke", "--out", str(out), "--threads", "1"]) == 0
    assert not out.with_name("pretrained.partial").exists()
    assert {"config.json", "model.safetensors", "README.md", "pretraining.json", "tokenizer.json"} <= \
        {p.name for p in out.iterdir()}
    made = json.loads((out / "pretraining.json").read_text())
    assert made["recipe"]["warmup_steps"] == SMOKE["warmup_steps"] and set(made["held_out"]) == {
        "one image", "reference, then the image"}
    model, processor = load_tiny_vlm(out)
    stars = star_images(2, seed=5)
    texts = generate(model.float(), processor, mixed(stars, reference_images(1, 6), 0, with_answer=False),
                     max_new_tokens=8, progress=False)
    assert len(texts) == 2 and all(isinstance(t, str) for t, _ in texts)


def test_a_recipe_that_makes_no_sense_is_an_error_before_any_work(tmp_path):
    for bad in (dict(warmup_steps=0), dict(n_images=0), dict(no_star=1.0)):
        with pytest.raises(PretrainError, match="must be >= 1"):
            pretrain(tmp_path / "x", replace(Recipe(), **bad))
    assert not any(tmp_path.iterdir())
