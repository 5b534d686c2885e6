import subprocess
import sys

import numpy as np
import pytest

from qeu_vlm.conversation import with_image_list, to_conversation
from qeu_vlm.data import load_pools


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from qeu_vlm.offline.tiny_model import build_tiny_vlm
    return build_tiny_vlm(tmp_path_factory.mktemp("tiny") / "m")


def test_small_and_reloads_offline(tiny):
    size = sum(f.stat().st_size for f in tiny.iterdir())
    assert size < 5e6 and (tiny / "model.safetensors").exists()
    code = (
        "from qeu_vlm.offline.tiny_model import load_tiny_vlm; m, p = load_tiny_vlm(%r); "
        "print(type(m).__name__, p.tokenizer.convert_tokens_to_ids('<|image_pad|>') == m.config.image_token_id)"
    ) % str(tiny)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "HOME": "/tmp"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[-2:] == ["Qwen2_5_VLForConditionalGeneration", "True"]


def test_chat_template_is_qwens(tiny):
    from qeu_vlm.offline.tiny_model import load_tiny_vlm
    _, p = load_tiny_vlm(tiny)
    text = p.apply_chat_template([{"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image"}]}],
                                 tokenize=False, add_generation_prompt=True)
    assert text == ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
                    "hi<|vision_start|><|image_pad|><|vision_end|><|im_end|>\n<|im_start|>assistant\n")


def test_conversations_feed_trl_collator_and_model(tiny, twin, twin_dir):
    """The one-shot and zero-shot conversations go straight into TRL's real VLM collator and the model."""
    from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling
    from qeu_vlm.offline.tiny_model import load_tiny_vlm

    model, proc = load_tiny_vlm(tiny)
    pools = load_pools(twin_dir / "drive")
    rng = np.random.default_rng(0)
    recs = twin.splits["CYLNimages_train_1015"]
    batch = DataCollatorForVisionLanguageModeling(proc)(
        [
            with_image_list(to_conversation(recs[0], pools, "one", rng)),
            with_image_list(to_conversation(recs[1], pools, "zero", rng)),
        ]
    )
    assert batch["image_grid_thw"].shape[0] == 5                      # 3 + 2 images
    n_img = (batch["input_ids"] == proc.image_token_id).sum(1)
    assert n_img[0] > n_img[1] > 0
    loss = model(**batch).loss.item()
    assert np.isfinite(loss) and 4 < loss < 9                           # ~ln(vocab) at random init


def test_lecun_init_scales_the_weights_to_the_width():
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    from qeu_vlm.offline.tiny_model import SIZES, build_tokenizer, tiny_config

    tok = build_tokenizer()
    for lecun, text_std, vision_std in ((False, 0.02, 0.02), (True, 256 ** -0.5, 128 ** -0.5)):
        torch.manual_seed(0)
        m = Qwen2_5_VLForConditionalGeneration(tiny_config(tok, **SIZES["learn"], lecun_init=lecun))
        assert m.model.language_model.layers[0].self_attn.q_proj.weight.std().item() == pytest.approx(
            text_std, rel=0.05
        )
        assert m.model.visual.blocks[0].attn.qkv.weight.std().item() == pytest.approx(vision_std, rel=0.05)
