import numpy as np
import pytest

from qeu_vlm import parse_answer
from qeu_vlm.conversation import as_dataset, convert, with_image_list, images_of, shot_plan, to_conversation
from qeu_vlm.data import decode, load_pools


@pytest.fixture(scope="module")
def pools(twin_dir):
    return load_pools(twin_dir / "drive")


def test_zero_one_composite(twin, pools):
    rec = twin.splits["CYLNimages_train_1015"][0]
    rng = np.random.default_rng(0)
    z = to_conversation(rec, pools, "zero", rng)
    o = to_conversation(rec, pools, "one", rng)
    c = to_conversation(rec, pools, "composite", rng)
    assert len(images_of(z)) == 2 and len(images_of(o)) == 3 and len(images_of(c)) == 1
    assert [m["role"] for m in o["messages"]] == ["user", "assistant", "user", "assistant"]
    # The test image is the last image, the reference is a passed pool image of the same type.
    assert np.array_equal(np.asarray(images_of(z)[-1]), np.asarray(decode(rec["image"])))
    assert any(images_of(z)[0] is im for im in pools.passed[rec["type"]])
    assert any(images_of(o)[0] is im for im, _ in pools.stars[rec["type"]])
    assert parse_answer(z["messages"][-1]["content"][0]["text"]).valid
    assert images_of(c)[0].height > 2 * 280


def test_inference_variant_and_trl_form(twin, pools):
    rec = twin.splits["CYLNimages_train_1015"][1]
    inf = to_conversation(rec, pools, "one", np.random.default_rng(0), with_answer=False)
    assert inf["messages"][-1]["role"] == "user"
    t = with_image_list(inf)
    assert len(t["images"]) == 3
    assert sum(c == {"type": "image"} for m in t["messages"] for c in m["content"]) == 3


def test_as_dataset_gives_the_same_rows_and_encodes_no_image(twin, pools, monkeypatch):
    import datasets
    from PIL import Image

    rng = np.random.default_rng(0)
    convs = [to_conversation(r, pools, "zero", rng) for r in twin.splits["CYLNimages_train_1015"][:6]]
    samples = [with_image_list(c) for c in convs + convs[:2]]          # repeats, as a balanced set has
    plain = datasets.Dataset.from_list(samples)
    monkeypatch.setattr(Image.Image, "save", lambda *a, **k: pytest.fail("an image was encoded"))
    ds = as_dataset(samples)
    assert len(ds) == len(samples) and set(ds[0]) == {"messages", "images"}
    for got, want, sample in zip(ds, plain, samples):
        assert got["messages"] == want["messages"]
        assert [np.asarray(a).tolist() for a in got["images"]] == [np.asarray(b).tolist() for b in want["images"]]
        assert got["images"] == sample["images"]
    assert [len(x) for x in ds[2:5]["images"]] == [2, 2, 2]       # a slice, as a batched reader takes it


def test_mixing_seeded(twin, pools):
    recs = twin.splits["CYLNimages_train_1015"][:10]
    assert shot_plan(10, one_shot_first=4) == ["one"] * 4 + ["zero"] * 6
    assert shot_plan(10, one_shot_fraction=0.5) == shot_plan(10, one_shot_fraction=0.5)
    a = convert(recs, pools, shot_plan(10, one_shot_first=4), seed=1)
    b = convert(recs, pools, shot_plan(10, one_shot_first=4), seed=1)
    assert [id(x) for c in a for x in images_of(c)[:-1]] == [id(x) for c in b for x in images_of(c)[:-1]]
    with pytest.raises(ValueError, match="shot mode"):
        to_conversation(recs[0], pools, "two", np.random.default_rng(0))


def test_prompt_sets(twin, pools):
    rec = twin.splits["CYLNimages_train_1015"][0]
    d = to_conversation(rec, pools, "zero", np.random.default_rng(0))["messages"][0]["content"][0]["text"]
    o = to_conversation(rec, pools, "zero", np.random.default_rng(0), prompt_set="original")
    o = o["messages"][0]["content"][0]["text"]
    assert "digits 1 to 9 across the top give the X address" in d and "X address" not in o


def test_balanced_training_set_has_equal_judgements(twin_dir, tmp_path):
    from collections import Counter
    from qeu_vlm.config import Config
    from qeu_vlm.tools.steps import balance_judgements, balanced_train_convs, prepare

    cfg = Config(run_dir=str(tmp_path), data=str(twin_dir / "dataset"), pools=str(twin_dir / "drive"), n_eval=4,
                 n_inspect=2, inspect_shots=("zero",), one_shot_first=0)
    def judge(convs):
        return Counter("judgement->passed" in c["messages"][-1]["content"][0]["text"] for c in convs)

    plain = prepare(cfg)
    before, after = judge(plain.train_convs), judge(balanced_train_convs(plain))
    assert before[True] < before[False]                          # the twin's natural mix: fewer passed
    assert after[True] == after[False] == before[False]          # passed repeated, nothing dropped
    assert judge(plain.train_convs) == before                    # a step of its own: the run's set is unchanged
    with pytest.raises(ValueError, match="2 judgements for 3 conversations"):
        balance_judgements([{}, {}, {}], [True, False])
