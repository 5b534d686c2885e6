"""The planner's image tokens agree with the real processors (built offline from their classes), its estimates
with the original runs' measured peaks, and its verdicts with what the originals found."""
import pytest
from PIL import Image

from qeu_vlm.tools.planner import Setting, estimate, image_cost, mllama_canvas, plan, memory_check
from qeu_vlm.config import Config

SIZES = [(410, 280), (1920, 1080), (224, 154), (300, 900), (60, 40)]


def _img(w, h):
    return Image.new("RGB", (w, h), (90, 120, 200))


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("family,patch,cap", [("qwen2.5-vl", 14, 448 * 308), ("qwen2.5-vl", 14, 28 * 28 * 1280),
                                              ("qwen3-vl", 16, 448 * 308)])
def test_qwen_tokens_match_the_processor(family, patch, cap, size):
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    ip = Qwen2VLImageProcessorPil(patch_size=patch, merge_size=2, min_pixels=56 * 56, max_pixels=cap)
    t, h, w = ip(images=[_img(*size)], return_tensors="np")["image_grid_thw"][0]
    cost = image_cost(family, *size, max_pixels=cap)
    assert cost.text_tokens - 2 == h * w // 4 and cost.vision_tokens == h * w
    assert cost.size == (w * patch, h * patch)


@pytest.mark.parametrize("size", SIZES)
def test_mllama_tiles_match_the_processor(size):
    from transformers.models.mllama.image_processing_pil_mllama import MllamaImageProcessorPil

    ip = MllamaImageProcessorPil(size={"height": 560, "width": 560}, max_image_tiles=4)
    out = ip(images=[[_img(*size)]], return_tensors="np")
    rows, cols = mllama_canvas(size[1], size[0])
    assert out["num_tiles"][0][0] == rows * cols
    assert out["pixel_values"].shape[2] == 4                      # all tile slots are computed, padded ones too
    assert image_cost("mllama", *size).text_tokens == 1


@pytest.mark.parametrize("size", SIZES)
def test_pixtral_patches_match_the_processor(size):
    from transformers.models.pixtral.image_processing_pil_pixtral import PixtralImageProcessorPil

    h, w = PixtralImageProcessorPil()(images=[_img(*size)], return_tensors="np")["image_sizes"][0]
    cost = image_cost("pixtral", *size)
    assert cost.size == (w, h) and cost.vision_tokens == (h // 16) * (w // 16)


def test_tiny_model_tokens_match_its_processor():
    from qeu_vlm.offline.tiny_model import build_processor

    proc = build_processor(max_pixels=224 * 168)
    text = proc.apply_chat_template([{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "x"}]}],
                                    tokenize=False)
    ids = proc(text=[text], images=[[_img(224, 154)]], return_tensors="pt")["input_ids"][0]
    n = int((ids == proc.tokenizer.convert_tokens_to_ids("<|image_pad|>")).sum())
    assert n == image_cost("qwen2.5-vl", 224, 154, max_pixels=224 * 168).text_tokens - 2 == 48


@pytest.mark.parametrize("setting,measured", [
    (Setting("llama-3.2-11b-vision", "one", batch=2, grad_accum=4), 18.0),                 # L4, 19.7 min
    (Setting("qwen2-vl-7b", "one", batch=2, grad_accum=4, max_pixels=28 * 28 * 1280), 9.0),  # L4, 6.5 min
])
def test_estimates_are_within_15_percent_of_the_original_runs(setting, measured):
    assert abs(estimate(setting).peak_gib - measured) / measured <= 0.15


def test_verdicts_and_cheapest_fix():
    llama = plan("llama-3.2-11b-vision", shot="one")
    assert llama.verdicts == {"T4": "does not fit", "L4": "fits", "A100": "fits"}   # as the originals found
    assert "batch 1" in llama.fixes["T4"]
    assert estimate(llama.setting.__class__(**{**llama.setting.__dict__, "batch": 1, "grad_accum": 8})).peak_gib <= 15
    default = plan("qwen2.5-vl-3b", shot="one")
    assert default.verdicts["T4"] == "fits" and not default.fixes
    assert "tokens/sample" in str(default)


def test_preflight_reports_the_token_budget_on_cpu(capsys):
    msg = memory_check(Config().smoke(), [300, 420, 380], "hf")
    assert msg.startswith("token budget: 3 samples, 300-420 tokens")
    assert "token budget" in capsys.readouterr().out


def test_unknown_family_is_named():
    with pytest.raises(ValueError, match="unknown model family 'blip'"):
        image_cost("blip")
