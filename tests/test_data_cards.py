"""Every data card loads with huggingface_hub's DatasetCard offline, has the template's sections, and the
synthetic twin's recorded summary is what the generator makes."""
import json
import re
from pathlib import Path

import pytest
from huggingface_hub import DatasetCard

from qeu_vlm.twin.synth import SynthConfig

CARDS = sorted((Path(__file__).parent.parent / "data_cards").glob("*.md"))
SECTIONS = ("Dataset Details", "Uses", "Dataset Structure", "Dataset Creation", "Bias, Risks, and Limitations",
            "Citation", "Card Authors")


def test_the_cards_exist():
    assert {p.stem for p in CARDS} >= {"cylnimages_train_1015", "cylnimages_test_1015", "reference_pools",
                                       "synthetic_twin"}


@pytest.mark.parametrize("path", CARDS, ids=lambda p: p.stem)
def test_card_follows_the_template(path):
    card = DatasetCard.load(path)
    meta = card.data.to_dict()
    for key in ("pretty_name", "license", "language", "task_categories", "size_categories", "tags"):
        assert meta.get(key), f"{path.name}: YAML field {key} missing"
    assert "image-text-to-text" in meta["task_categories"]
    headings = re.findall(r"^## (.+)$", card.text, re.M)
    assert [h for h in headings if h in SECTIONS] == list(SECTIONS), f"{path.name}: sections {headings}"


def test_real_cards_record_what_is_known():
    train, test = [DatasetCard.load(next(p for p in CARDS if p.stem == s)).text
                    for s in ("cylnimages_train_1015", "cylnimages_test_1015")]
    for text in (train, test):
        for fact in ("`dir`", "`position`", "`type`", "`bbox_str`", "`image`", "N-SORTC", "Minkowski", "18 of the 27"):
            assert fact in text
    assert "1,520" in train and "462 (230 DST, 232 RAW)" in test


@pytest.mark.slow
def test_synthetic_card_summary_is_what_the_generator_makes():
    text = DatasetCard.load(next(p for p in CARDS if p.stem == "synthetic_twin")).text
    recorded = json.loads(re.search(r"### Recorded split summary.*?```json\n(.*?)```", text, re.S)[1])
    cfg = SynthConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in recorded["config"].items()})
    assert cfg.generate(progress=False).summary() == recorded
