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
from qeu_vlm.offline.random_models import family_tokenizer
from qeu_vlm.tools.steps import loadable
from qeu_vlm.training import train


@pytest.fixture(scope="module")
def loaded(twin, twin_dir, tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    model, proc = load_model(loadable(Config().smoke(), run), "hf")
    pools = load_pools(twin_dir / "drive")
    recs = twin.splits["CYLNimages_train_1015"][:12]
    convs = convert(recs, pools, shot_plan(12, one_shot_first=4), seed=0)
    return run, model, proc, convs


@pytest.fixture
def setup(loaded):
    """A fresh smoke config for each test (tests change it), with the model and conversations loaded once."""
    return (loadable(Config().smoke(), loaded[0]), *loaded)


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


def test_preflight_in_chunks_counts_each_sample_as_alone(setup):
    cfg, _, model, proc, convs = setup
    cfg.loss_on = "final"
    col = make_collator(cfg, model, proc, "hf")
    samples = [with_image_list(c) for c in convs]          # one-shot (3 images) and zero-shot: lengths differ
    alone = [preflight(col, [s], [i], None)[0] for i, s in enumerate(samples)]
    assert len(set(alone)) > 1
    assert preflight(col, samples, range(len(samples)), None, chunk=5) == alone
    no_answer = dict(samples[8], messages=samples[8]["messages"][:-1])
    with pytest.raises(TrainingError, match="record 8: every label is masked"):
        preflight(col, samples[:8] + [no_answer], range(9), None, chunk=5)
    with pytest.raises(TrainingError, match=rf"record 0: {alone[0]} tokens exceed"):
        preflight(col, samples, range(len(samples)), min(alone[1:]), chunk=5)


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


def _weights(run):
    from safetensors.torch import load_file
    return load_file(str(run / "adapter" / "model.safetensors"))


@pytest.mark.slow
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


@pytest.mark.parametrize("family, end", [("mllama", "<|eot_id|>"), ("pixtral", "</s>")])
def test_loss_mask_reads_other_families_templates(setup, family, end):
    tok = family_tokenizer(family)                   # the offline tokenizer with the family's chat template
    one = with_image_list(setup[4][0])  # a one-shot conversation: star turn, then the inspection turn
    ids = tok.apply_chat_template(one["messages"], tokenize=True, return_dict=True)["input_ids"]
    batch = {"input_ids": torch.tensor([ids]), "labels": torch.tensor([ids])}
    answer, star = one["messages"][-1]["content"][0]["text"], one["messages"][1]["content"][0]["text"]
    for mode, want in (("final", answer + end), ("assistant", star + end + answer + end)):
        out = LossMask(lambda examples: dict(batch), tok, mode)([one])
        assert tok.decode(out["input_ids"][0][out["labels"][0] != -100]) == want
