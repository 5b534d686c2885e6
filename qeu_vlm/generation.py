"""Generation: batched greedy answers to inference conversations -> parsed predictions JSONL.

Works for a base model and for base + adapter, so before/after is one call each. As in Unsloth's notebooks the
model is switched to inference mode first (``FastVisionModel.for_inference`` on the Unsloth backend), and generation
stops at the model family's own end of turn, read off its chat template and generation config.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from huggingface_hub.utils import tqdm   # huggingface_hub's switch turns it off

from .answer import parse_answer
from .batching import answer_markers
from .conversation import with_image_list
from .model import for_inference


def stop_ids(model, tokenizer) -> list[int]:
    """The ids that end an answer: the end of an assistant turn in the tokenizer's chat template (``<|im_end|>``
    for Qwen, ``<|eot_id|>`` for Llama 3.2, ``</s>`` for Pixtral) and the model's own end-of-sequence ids."""
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    eos = [] if eos is None else [eos] if isinstance(eos, int) else list(eos)
    return sorted({answer_markers(tokenizer)[1], *eos})


def chat_prompts(processor, convs: list[dict]) -> tuple[list[str], list[list]]:
    """(prompt texts, images per prompt) of inference conversations: the chat template with the generation prompt,
    one image placeholder per image; every engine is given these."""
    samples = [with_image_list(c) for c in convs]
    texts = [processor.apply_chat_template(s["messages"], tokenize=False, add_generation_prompt=True) for s in samples]
    return texts, [s["images"] for s in samples]


def _inputs(processor, convs: list[dict], device):
    """Model inputs for inference conversations: ``chat_prompts``, the images processed, padding."""
    texts, images = chat_prompts(processor, convs)
    return processor(text=texts, images=images, return_tensors="pt", padding=True).to(device)


def _greedy(model, tok) -> dict:
    """``generate`` arguments of every answer here: greedy, ending at the family's end of turn."""
    stop = stop_ids(model, tok)
    return dict(do_sample=False, eos_token_id=stop,
                pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else stop[0])


def generate(model, processor, convs: list[dict], batch_size: int = 8, max_new_tokens: int = 64,
             progress: bool = True, backend: str = "hf") -> list[tuple[str, float]]:
    """Greedy answers for inference conversations (no final answer), with seconds per record."""
    import torch

    tok = processor.tokenizer
    tok.padding_side = "left"                      # generation continues from the right edge
    for_inference(model, backend)
    greedy = _greedy(model, tok)
    out = []
    for i in tqdm(range(0, len(convs), batch_size), desc="inspecting", disable=not progress):
        chunk = convs[i:i + batch_size]
        batch = _inputs(processor, chunk, model.device)
        t = time.perf_counter()
        with torch.inference_mode():
            ids = model.generate(**batch, max_new_tokens=max_new_tokens, **greedy)
        dt = (time.perf_counter() - t) / len(chunk)
        new = ids[:, batch["input_ids"].shape[1]:]
        out += [(txt, dt) for txt in tok.batch_decode(new, skip_special_tokens=True)]
    return out


def stream_answer(model, processor, conv: dict, backend: str = "hf", max_new_tokens: int = 64) -> str:
    """One answer printed token by token as it is generated, as Unsloth's notebooks end their training; returns it.

    ``conv``: an inference conversation (no final answer), as ``to_conversation(..., with_answer=False)`` makes it.
    """
    import torch
    from transformers import TextStreamer

    tok = processor.tokenizer
    for_inference(model, backend)
    batch = _inputs(processor, [conv], model.device)
    with torch.inference_mode():
        out = model.generate(**batch, streamer=TextStreamer(tok, skip_prompt=True, skip_special_tokens=True),
                             max_new_tokens=max_new_tokens, **_greedy(model, tok))
    return tok.decode(out[0, batch["input_ids"].shape[1]:], skip_special_tokens=True)


def prediction_row(text: str, truth, shot: str, image_type: str, seconds: float) -> dict:
    """One line of a predictions JSONL: the raw text, its parse (never trusted, never raising), the truth."""
    return {"text": text, "parsed": parse_answer(text).to_dict(), "truth": truth.to_dict(), "shot": shot,
            "type": image_type, "seconds": round(seconds, 4)}


def predict(model, processor, records, convs: list[dict], truths, path, **kw) -> list[dict]:
    """Generate, parse and save one JSONL row per record: text, parsed, truth, shot, type, seconds."""
    rows = [prediction_row(text, truth, conv["shot"], rec["type"], dt)
            for rec, conv, truth, (text, dt) in zip(records, convs, truths, generate(model, processor, convs, **kw))]
    return write_jsonl(rows, path)


def write_jsonl(rows: list[dict], path) -> list[dict]:
    """One JSON object per line, written aside and renamed: never a half-written file under the final name."""
    path = Path(path)
    tmp = path.with_suffix(".partial")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tmp.rename(path)
    return rows
