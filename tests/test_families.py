"""Families: each real processor, capped by cap_images, produces the image tokens the planner counts; LoRA targets
follow the four switches in every family and wrap exactly those layers in peft; unusable models are named."""
import pytest
from PIL import Image

from qeu_vlm.families import ModelError, cap_images, family_of, lora_targets
from qeu_vlm.tools.planner import IMAGE, QWEN_MAX_PIXELS, image_cost
from qeu_vlm.presets import PRESETS
from qeu_vlm.offline.random_models import random_config, random_processor

FAMILY_PRESET = {"qwen2.5-vl": "qwen2.5-vl-3b", "qwen3-vl": "qwen3-vl-2b", "mllama": "llama-3.2-11b-vision",
                 "pixtral": "pixtral-12b"}
USER = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Inspect the pins."}]}]


def _image():
    return Image.new("RGB", IMAGE, (90, 120, 200))         # the datasets' 410x280


def _run(proc):
    text = proc.apply_chat_template(USER, tokenize=False)
    return proc(text=[text], images=[[_image()]], return_tensors="pt")


def _count(proc, ids, token):
    return int((ids == proc.tokenizer.convert_tokens_to_ids(token)).sum())


# -- image caps: the real processors against the planner ---------------------------------------------------------
@pytest.mark.parametrize("family,patch", [("qwen2.5-vl", 14), ("qwen3-vl", 16)])
@pytest.mark.parametrize("cap", [448 * 308, 60_000, 20_000, None])
def test_qwen_image_tokens_match_the_planner(family, patch, cap):
    """The text holds one <|image_pad|> per merged 2x2 patch between <|vision_start|> and <|vision_end|>: the pads
    plus those two are the image's tokens, the planner's text_tokens. Without torchvision the Qwen3-VL processor is
    the image-only Qwen2.5-VL one with Qwen3-VL's 16-pixel patches; both expand pads the same way."""
    proc = cap_images(random_processor(family, QWEN_MAX_PIXELS), family, cap)   # None: the default cap stays
    # where transformers 5.17 reads the cap: a max_pixels attribute alone, which 5.24 also honours, 5.17 ignores
    assert proc.image_processor.size["longest_edge"] == (cap or QWEN_MAX_PIXELS)
    out = _run(proc)
    ids = out["input_ids"][0]
    assert _count(proc, ids, "<|vision_start|>") == _count(proc, ids, "<|vision_end|>") == 1
    assert _count(proc, ids, "<|image_pad|>") + 2 == image_cost(family, max_pixels=cap).text_tokens
    _, h, w = out["image_grid_thw"][0].tolist()
    assert h * w * patch * patch <= (cap or QWEN_MAX_PIXELS)                      # the cap holds


def test_qwen_cap_changes_the_tokens():
    """The caps above are not all no-ops on a 410x280 image: the smaller ones shrink it."""
    tokens = {cap: image_cost("qwen2.5-vl", max_pixels=cap).text_tokens for cap in (448 * 308, 60_000, 20_000)}
    assert tokens[448 * 308] > tokens[60_000] > tokens[20_000]


@pytest.mark.parametrize("cap", [4 * 560 * 560, 9 * 560 * 560, None])
def test_mllama_tiles_match_the_planner(cap):
    """One <|image|> token per image; the tiles holding the image (aspect_ratio_mask) and the tile slots the tower
    runs (pixel_values' third axis) are the planner's canvas and vision tokens."""
    proc = cap_images(random_processor("mllama", 0), "mllama", cap)
    out = _run(proc)
    cost = image_cost("mllama", max_pixels=cap)
    per_tile = 1608                                                 # 40x40 patches + 1, padded to a multiple of 8
    assert _count(proc, out["input_ids"][0], "<|image|>") == cost.text_tokens == 1
    assert int(out["aspect_ratio_mask"][0, 0].sum()) == (cost.size[0] // 560) * (cost.size[1] // 560)
    assert out["pixel_values"].shape[2] * per_tile == cost.vision_tokens == 4 * per_tile


def test_mllama_refuses_fewer_tiles_than_its_tower_takes():
    """A cap under 4 tiles is refused, because the model cannot take fewer tile slots (checked on the toy model:
    if a later transformers accepts them, this fails and the refusal can go)."""
    import torch
    from transformers import AutoModelForImageTextToText

    proc = random_processor("mllama", 0)
    with pytest.raises(ModelError, match=r"max_pixels=137984 means 1 tile.*exactly 4 tile slots"):
        cap_images(proc, "mllama", 448 * 308)
    assert proc.image_processor.max_image_tiles == 4                 # left as it was
    model = AutoModelForImageTextToText.from_config(random_config("llama-3.2-11b-vision", shrink=True))
    proc.image_processor.max_image_tiles = 2
    with torch.no_grad(), pytest.raises(RuntimeError):
        model(**_run(proc))


@pytest.mark.parametrize("cap", [512 * 352, 60_000, 20_000, None])
def test_pixtral_image_tokens_match_the_planner(cap):
    """Pixtral's image processor alone (its processor needs torchvision). The processor's replace_image_token writes
    an [IMG] per 16-pixel patch and a break after each row (the last one [IMG_END]): rows * (columns + 1)."""
    from transformers import PixtralImageProcessorPil

    ip = cap_images(PixtralImageProcessorPil(size={"longest_edge": 1024}, patch_size=16), "pixtral", cap)
    h, w = ip(images=[_image()], return_tensors="np")["image_sizes"][0]
    cost = image_cost("pixtral", max_pixels=cap)
    assert (h // 16) * (w // 16 + 1) == cost.text_tokens and (w, h) == cost.size
    assert cap is None or (h - 16) * (w - 16) < cap                # within a patch of the cap (sides round up)


def test_pixtral_cap_changes_the_tokens():
    tokens = [image_cost("pixtral", max_pixels=cap).text_tokens for cap in (512 * 352, 60_000, 20_000)]
    assert tokens[0] > tokens[1] > tokens[2]


def test_unknown_family_is_named():
    with pytest.raises(ModelError, match="unknown model family 'blip'"):
        cap_images(None, "blip", 1000)


# -- LoRA targets ------------------------------------------------------------------------------------------------
VISION = {"qwen2.5-vl": ("model.visual.",), "qwen3-vl": ("model.visual.",),
          "mllama": ("model.vision_model.", "model.multi_modal_projector"),
          "pixtral": ("model.vision_tower.", "model.multi_modal_projector.")}
ATTENTION = {"q_proj", "k_proj", "v_proj", "o_proj", "qkv", "proj"}
MLP = {"gate_proj", "up_proj", "down_proj", "fc1", "fc2", "linear_fc1", "linear_fc2", "linear_1", "linear_2",
       "0", "2", "multi_modal_projector"}                # "0", "2": Qwen2.5-VL's merger.mlp; the last: Mllama's


def _toy(family, device="meta"):
    import torch
    from transformers import AutoModelForImageTextToText

    with torch.device(device):
        return AutoModelForImageTextToText.from_config(random_config(FAMILY_PRESET[family], shrink=True))


def _linears(model):
    import torch

    return [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]


@pytest.mark.parametrize("family", list(FAMILY_PRESET))
def test_lora_targets_follow_the_switches(family):
    model = _toy(family)
    is_vision = lambda n: n.startswith(VISION[family])  # noqa: E731
    leaf = lambda n: n.rsplit(".", 1)[-1]  # noqa: E731
    everything = lora_targets(model, True, True, True, True)
    assert everything == [n for n in _linears(model) if n != "lm_head"]          # nothing left out but the head
    vision, language = lora_targets(model, True, False, True, True), lora_targets(model, False, True, True, True)
    assert vision and all(map(is_vision, vision)) and language and not any(map(is_vision, language))
    assert sorted(vision + language) == sorted(everything)
    attention, mlp = lora_targets(model, True, True, True, False), lora_targets(model, True, True, False, True)
    assert {leaf(n) for n in attention} <= ATTENTION and {leaf(n) for n in mlp} <= MLP
    assert sorted(attention + mlp) == sorted(everything)
    for v, a in [(True, True), (True, False), (False, True), (False, False)]:    # both kinds in both parts
        part = lora_targets(model, v, not v, a, not a)
        assert part and all(is_vision(n) == v for n in part)
    if family == "qwen3-vl":
        vision_mlp = lora_targets(model, True, False, False, True)
        assert {"model.visual.blocks.0.mlp.linear_fc1", "model.visual.blocks.0.mlp.linear_fc2",
                "model.visual.merger.linear_fc1", "model.visual.merger.linear_fc2"} <= set(vision_mlp)
    if family == "mllama":
        assert any(".cross_attn.q_proj" in n for n in lora_targets(model, False, True, True, False))
        assert "model.multi_modal_projector" in lora_targets(model, True, False, False, True)


@pytest.mark.parametrize("switches", [(False, False, False, False), (False, False, True, True),
                                      (True, True, False, False)])
def test_no_lora_targets_is_an_error(switches):
    with pytest.raises(ModelError, match=r"finetune_vision=\w+, finetune_language=\w+, finetune_attention"):
        lora_targets(_toy("qwen2.5-vl"), *switches)


@pytest.mark.parametrize("switches", [(True, False, False, True), (True, True, True, True)])
def test_peft_wraps_exactly_the_targets(switches):
    from peft import LoraConfig, get_peft_model
    from peft.tuners.lora import LoraLayer

    model = _toy("qwen2.5-vl", device="cpu")
    targets = lora_targets(model, *switches)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=targets))
    wrapped = [n.removeprefix("base_model.model.") for n, m in peft_model.named_modules() if isinstance(m, LoraLayer)]
    assert sorted(wrapped) == sorted(targets)


# -- family_of ---------------------------------------------------------------------------------------------------
def test_presets_and_saved_models_name_their_family(tmp_path):
    assert {name: family_of(name) for name in PRESETS} == {name: p.family for name, p in PRESETS.items()}
    for family, preset in FAMILY_PRESET.items():            # the model_type strings transformers writes
        random_config(preset, shrink=True).save_pretrained(tmp_path / family)
        assert family_of(str(tmp_path / family)) == family


def test_unusable_models_are_named(tmp_path):
    from transformers import LlamaConfig, LlavaConfig

    with pytest.raises(ModelError, match="unknown model 'blip-2': neither a preset"):
        family_of("blip-2")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match=f"'{tmp_path / 'empty'}' has no config.json"):
        family_of(str(tmp_path / "empty"))
    LlamaConfig(num_hidden_layers=1).save_pretrained(tmp_path / "text-only")
    with pytest.raises(ModelError, match=r"text-only' holds a 'llama' model, not a vision-language model"):
        family_of(str(tmp_path / "text-only"))
    LlavaConfig().save_pretrained(tmp_path / "clip-llava")                # Llava, but not Pixtral's tower
    with pytest.raises(ModelError, match=r"clip-llava' holds a 'llava' model with a 'clip_vision_model' vision"):
        family_of(str(tmp_path / "clip-llava"))
    assert issubclass(ModelError, ValueError)
