"""Model loading (bad input named, GPU placement, image caps) and generation's end of turn, per family."""
import json
from types import SimpleNamespace

import pytest
import torch

from qeu_vlm.config import Config
from qeu_vlm.families import ModelError
from qeu_vlm.generation import stop_ids
from qeu_vlm.model import check_adapter, load_model, model_source, placement
from qeu_vlm.offline.random_models import family_tokenizer
from qeu_vlm.tools.steps import loadable


@pytest.mark.parametrize("family, end", [("qwen2.5-vl", "<|im_end|>"), ("qwen3-vl", "<|im_end|>"),
                                         ("mllama", "<|eot_id|>"), ("pixtral", "</s>")])
def test_generation_stops_at_each_familys_own_end_of_turn(family, end):
    tok = family_tokenizer(family)                       # the offline tokenizer with the family's chat template
    config = SimpleNamespace(eos_token_id=None)
    assert stop_ids(SimpleNamespace(generation_config=config), tok) == [tok.convert_tokens_to_ids(end)]
    config.eos_token_id = [7, tok.convert_tokens_to_ids(end)]    # the model's own ids are kept too, once each
    assert stop_ids(SimpleNamespace(generation_config=config), tok) == sorted({7, tok.convert_tokens_to_ids(end)})


def test_generation_stops_on_the_end_of_turn_token(tmp_path):
    """A real tiny model whose end-of-sequence id is not the end of turn still stops there."""
    from qeu_vlm.generation import generate
    from PIL import Image

    model, proc = load_model(loadable(Config().smoke(), tmp_path), "hf")
    end = proc.tokenizer.convert_tokens_to_ids("<|im_end|>")
    model.generation_config.eos_token_id = None

    steps = []

    def end_of_turn_always(module, inputs, logits):     # the model answers the end of turn at every step
        steps.append(1)
        out = torch.zeros_like(logits)
        out[..., end] = 1.0
        return out

    model.lm_head.register_forward_hook(end_of_turn_always)
    conv = {"messages": [{"role": "user", "content": [{"type": "text", "text": "look"},
                                                       {"type": "image", "image": Image.new("RGB", (56, 56))}]}]}
    [(text, _)] = generate(model, proc, [conv], max_new_tokens=20, progress=False)
    assert text == "" and len(steps) == 1                # stopped at once, not after 20 tokens of <|im_end|>


def test_unknown_models_and_folders_that_are_no_vlm_are_named(tmp_path):
    with pytest.raises(ModelError, match="unknown model 'gpt-vision': neither a preset"):
        model_source(Config(model="gpt-vision"))
    with pytest.raises(ModelError, match="unknown model 'tiny'"):      # the offline model is the tools' to build
        model_source(Config(model="tiny"))
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(ModelError, match=r"text' holds a 'llama' model, not a vision-language model"):
        load_model(Config(model=str(tmp_path / "text")), "hf")


def test_an_adapter_whose_base_is_gone_is_named(tmp_path):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "/content/gone/tiny_model"}))
    with pytest.raises(ModelError, match=r"adapter: its base model '/content/gone/tiny_model' cannot be found"):
        check_adapter(adapter)
    (adapter / "adapter_config.json").unlink()
    with pytest.raises(ModelError, match="neither a LoRA adapter"):
        check_adapter(adapter)
    with pytest.raises(ModelError, match="no adapter folder here; train first"):
        check_adapter(tmp_path / "missing")


def test_the_hf_backend_puts_the_model_on_the_gpu_when_there_is_one(monkeypatch):
    assert placement(Config()) == {"dtype": torch.float32} or torch.cuda.is_available()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)    # a T4
    where = placement(Config(load_in_4bit=False))
    assert where == {"device_map": {"": 0}, "dtype": torch.float16}


def test_the_image_cap_reaches_the_loaded_processor(tmp_path):
    _, proc = load_model(loadable(Config().smoke(), tmp_path), "hf")
    assert proc.image_processor.size["longest_edge"] == 224 * 160
    _, proc = load_model(loadable(Config(model="tiny", max_pixels=112 * 84, full_finetune=True), tmp_path), "hf")
    assert proc.image_processor.size["longest_edge"] == 112 * 84


def test_a_streamed_answer_is_the_batched_one_printed_as_it_comes(tmp_path, capsys, twin, twin_dir):
    from qeu_vlm.conversation import convert
    from qeu_vlm.data import load_pools
    from qeu_vlm.generation import generate, stream_answer

    model, proc = load_model(loadable(Config().smoke(), tmp_path), "hf")
    [conv] = convert(twin.splits["CYLNimages_test_1015"][:1], load_pools(twin_dir / "drive"), ["zero"], seed=0,
                     with_answer=False)
    word = proc.tokenizer.encode("pin")[0]

    def always_the_word(module, inputs, logits):        # a readable answer from the random model
        out = torch.zeros_like(logits)
        out[..., word] = 1.0
        return out

    model.lm_head.register_forward_hook(always_the_word)
    [(batched, _)] = generate(model, proc, [conv], max_new_tokens=8, progress=False)
    capsys.readouterr()
    streamed = stream_answer(model, proc, conv, max_new_tokens=8)
    assert streamed == batched == proc.tokenizer.decode([word] * 8) and streamed in capsys.readouterr().out
