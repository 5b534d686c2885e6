"""Conversations -> batches: token ids, pixels and labels, with the loss kept on the answer only.

Unsloth's ``UnslothVisionDataCollator`` (Unsloth backend) or TRL's ``DataCollatorForVisionLanguageModeling``
(the other) turns conversations into tensors; ``LossMask`` then keeps labels on the final answer only (or on every
assistant turn, or everywhere); ``preflight`` checks every sample before training, on both backends alike.
"""
from __future__ import annotations

from .config import Config

LOSS_MODES = ("final", "assistant", "all")
# Unsloth's collator truncates at max_seq_length, falling back to the model's (2,048) when given None. The length
# check is the pre-flight's alone, on both backends, so the collator gets a limit no sample reaches.
NO_TRUNCATION = 2**31 - 1


class TrainingError(RuntimeError):
    """A run that must not start: a sample too long for ``max_length``, with nothing to learn, or a bad setting."""


def answer_markers(tokenizer) -> tuple[list[int], int]:
    """(the token ids that open an assistant answer, the id that closes it), read off the tokenizer's own chat
    template, so Qwen (``<|im_start|>assistant``), Llama 3.2 (``<|start_header_id|>assistant...``) and Pixtral
    (``[/INST]`` ... ``</s>``) are all masked right without a table of formats."""
    q, a = "QQQQ", "AAAA"
    text = tokenizer.apply_chat_template([{"role": "user", "content": q}, {"role": "assistant", "content": a}],
                                         tokenize=False)
    # Trailing whitespace of the header may merge with the answer's first characters, so it is matched as answer.
    head = text[text.index(q) + len(q):text.index(a)].rstrip()
    close = tokenizer.encode(text[text.index(a) + len(a):], add_special_tokens=False)
    if not head or not close:
        raise TrainingError(f"cannot find the assistant markers in the chat template's rendering {text!r}")
    return tokenizer.encode(head, add_special_tokens=False), close[0]


class LossMask:
    """Wrap a collator and keep loss only on the final answer, on every assistant turn, or everywhere.

    Answers are found by the markers of the tokenizer's chat template (``answer_markers``).
    """

    def __init__(self, collator, tokenizer, mode: str = "final"):
        if mode not in LOSS_MODES:
            raise TrainingError(f"unknown loss mode {mode!r} (known: {', '.join(LOSS_MODES)})")
        self.collator, self.mode = collator, mode
        self.head, self.end = answer_markers(tokenizer)
        self.tokenizer = tokenizer

    def spans(self, ids: list[int]) -> list[tuple[int, int]]:
        """(start, end) of every assistant answer in ``ids``, its end marker included."""
        out, h, n = [], self.head, len(self.head)
        for i in range(len(ids) - n + 1):
            if ids[i] == h[0] and ids[i:i + n] == h:
                s = i + n
                while s < len(ids) and not self.tokenizer.decode([ids[s]]).strip():   # the newline(s) after the header
                    s += 1
                e = next((j for j in range(s, len(ids)) if ids[j] == self.end), len(ids) - 1)
                out.append((s, e + 1))                        # the answer and its end marker
        return out

    def __call__(self, examples):
        batch = self.collator(examples)
        if self.mode == "all":
            return batch
        labels = batch["labels"]
        keep = labels.new_zeros(labels.shape, dtype=bool)
        for b, ids in enumerate(batch["input_ids"].tolist()):
            spans = self.spans(ids)
            for s, e in spans[-1:] if self.mode == "final" else spans:
                keep[b, s:e] = True
        batch["labels"] = labels.masked_fill(~keep, -100)
        return batch


def make_collator(cfg: Config, model, processor, backend: str) -> LossMask:
    """The backend's own vision collator, wrapped in the loss mask."""
    if backend == "unsloth":
        from unsloth.trainer import UnslothVisionDataCollator

        # resize="max": images reach the processor as they are; its own max_pixels cap sizes them
        base = UnslothVisionDataCollator(model, processor, max_seq_length=NO_TRUNCATION, resize="max",
                                         train_on_responses_only=False)
    else:
        from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

        base = DataCollatorForVisionLanguageModeling(processor)
    tok = getattr(processor, "tokenizer", processor)
    return LossMask(base, tok, cfg.loss_on)


def preflight(collator, samples: list, ids: list, max_length: int | None, what: str = "train",
              chunk: int = 64) -> list[int]:
    """Token count of every sample; raise, naming the record, on one longer than ``max_length`` (truncation would
    cut image tokens or the answer) or with every label masked. Collated ``chunk`` samples at a time (padding
    changes no row's count)."""
    lengths, ids = [], list(ids)
    for start in range(0, len(samples), chunk):
        b = collator(samples[start:start + chunk])
        for n, labels, rid in zip(b["attention_mask"].sum(1).tolist(), b["labels"], ids[start:start + chunk]):
            lengths.append(n)
            if max_length is not None and n > max_length:
                raise TrainingError(f"{what} record {rid}: {n} tokens exceed max_length={max_length}; truncation "
                                    f"would cut image tokens. Raise max_length to at least {n} or lower the image "
                                    "cap (max_pixels).")
            if not (labels != -100).any():
                raise TrainingError(f"{what} record {rid}: every label is masked, nothing to learn from")
    return lengths
