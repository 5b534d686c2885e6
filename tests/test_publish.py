import json
from dataclasses import replace

import pytest

from huggingface_hub import ModelCard

from qeu_vlm.config import Config
from qeu_vlm.model import load_model
from qeu_vlm.tools.publish import model_card, push_adapter, twin_card
from qeu_vlm.tools.steps import loadable


def _metrics(run):
    s = {"n": 6, "format_valid": 0.5, "judgement_balanced_accuracy": 0.75, "mode_accuracy": None,
         "position_exact": 0.25, "within_one_pin": 0.5}
    (run / "metrics_finetuned.json").write_text(json.dumps({"all": {"n": 12}, "by_shot": {"zero": s, "one": s}}))


def test_model_card_carries_metrics(tmp_path):
    _metrics(tmp_path)
    card = model_card(tmp_path, "unsloth/Qwen2.5-VL-3B-Instruct-unsloth-bnb-4bit", "me/adapter")
    assert "| one | 0.500 | 0.750 | n/a | 0.250 | 0.500 |" in card.text
    assert "6 test records, each inspected zero-shot and one-shot (12 answers in all" in card.text   # records x shots
    header = ModelCard(str(card)).data                              # the YAML header, read back as the Hub reads it
    assert (header.library_name, header.base_model) == ("peft", "unsloth/Qwen2.5-VL-3B-Instruct-unsloth-bnb-4bit")
    assert "CPU smoke figures" not in card.text


def test_the_card_names_the_library_and_shows_its_header_as_a_header(tmp_path):
    _metrics(tmp_path)
    full = str(model_card(tmp_path, "tiny", "me/smoke", full_model=True))
    assert "library_name: transformers" in full and "base_model" not in full   # "tiny" is no Hub id
    assert "CPU smoke figures from a tiny random model" in full
    card = model_card(tmp_path, "tiny", "me/smoke", full_model=True)       # what 06 shows: header, then the page
    assert card.data.to_yaml().startswith("library_name: transformers") and "\n---\n" not in card.text


def test_the_twin_card_is_found():
    assert twin_card().name == "synthetic_twin.md"


def test_push_needs_token_and_never_shows_it(tmp_path, monkeypatch, capsys):
    _metrics(tmp_path)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with pytest.raises(RuntimeError, match="no Hub token"):
        push_adapter(tmp_path, "me/adapter", "tiny")
    monkeypatch.setenv("HF_TOKEN", "hf_do_not_print")
    with pytest.raises(FileNotFoundError, match="no .safetensors"):
        push_adapter(tmp_path, "me/adapter", "tiny")
    out = capsys.readouterr()
    assert "hf_do_not_print" not in out.out + out.err


@pytest.mark.slow
def test_lora_merge_export_reloads_with_its_processor_and_answers_as_base_plus_adapter(tmp_path, twin, twin_dir):
    """06's merge off Unsloth: peft's merge_and_unload, then save_pretrained with the processor; the folder loads
    back with its processor, without LoRA, and answers as base + adapter did."""
    import torch

    from qeu_vlm.conversation import convert
    from qeu_vlm.data import load_pools
    from qeu_vlm.generation import _inputs, generate

    cfg = replace(loadable(Config().smoke(), tmp_path), full_finetune=False)
    model, proc = load_model(cfg, "hf")
    torch.manual_seed(0)
    for name, p in model.named_parameters():
        if "lora_B" in name:            # B starts at zero, where merging changes nothing: give the adapter an effect
            torch.nn.init.normal_(p, std=0.5)
    convs = convert(twin.splits["CYLNimages_test_1015"][:2], load_pools(twin_dir / "drive"), ["zero", "one"], seed=0,
                    with_answer=False)
    batch = _inputs(proc, convs, "cpu")
    with torch.inference_mode():
        tuned = model(**batch).logits
        with model.disable_adapter():
            base = model(**batch).logits
    answers = generate(model, proc, convs, max_new_tokens=16, progress=False)
    out = tmp_path / "merged"
    model.merge_and_unload().save_pretrained(out)
    proc.save_pretrained(out)
    merged, merged_proc = load_model(replace(cfg, model=str(out), full_finetune=True), "hf")
    assert not any("lora_" in n for n, _ in merged.named_parameters())
    assert merged_proc.tokenizer.chat_template == proc.tokenizer.chat_template
    with torch.inference_mode():
        again = merged(**batch).logits                                  # the same inputs, padding included
    assert not torch.allclose(tuned, base, atol=1e-3)                  # the adapter matters ...
    assert torch.allclose(again, tuned, atol=1e-4)                     # ... and the merged weights carry it
    assert [a for a, _ in generate(merged, merged_proc, convs, max_new_tokens=16, progress=False)] == \
        [a for a, _ in answers]

