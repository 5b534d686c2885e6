"""Inspection: batched greedy generation over conversations -> predictions JSONL -> scores.

Works for a base model and for base + adapter, so before/after is one call each.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from tqdm.auto import tqdm

from .answer import parse_answer
from .conversation import for_trl


def generate(model, processor, convs: list[dict], batch_size: int = 8, max_new_tokens: int = 64,
             progress: bool = True) -> list[tuple[str, float]]:
    """Greedy answers for inference conversations (no final answer), with seconds per record."""
    import torch

    tok = processor.tokenizer
    tok.padding_side = "left"                      # generation continues from the right edge
    model.eval()
    out = []
    for i in tqdm(range(0, len(convs), batch_size), desc="inspecting", disable=not progress):
        chunk = [for_trl(c) for c in convs[i:i + batch_size]]
        texts = [processor.apply_chat_template(c["messages"], tokenize=False, add_generation_prompt=True) for c in chunk]
        images = [c["images"] for c in chunk]
        batch = processor(text=texts, images=images, return_tensors="pt", padding=True).to(model.device)
        t = time.perf_counter()
        with torch.inference_mode():
            ids = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tok.pad_token_id, eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"))
        dt = (time.perf_counter() - t) / len(chunk)
        new = ids[:, batch["input_ids"].shape[1]:]
        out += [(txt, dt) for txt in tok.batch_decode(new, skip_special_tokens=True)]
    return out


def prediction_row(text: str, truth, shot: str, image_type: str, seconds: float) -> dict:
    """One line of a predictions JSONL: the raw text, its parse (never trusted, never raising), the truth."""
    return {"text": text, "parsed": parse_answer(text).to_dict(), "truth": truth.to_dict(), "shot": shot,
            "type": image_type, "seconds": round(seconds, 4)}


def inspect(model, processor, records, convs: list[dict], truths, path, **kw) -> list[dict]:
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
