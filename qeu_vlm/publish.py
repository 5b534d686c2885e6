"""Save, export and publish a trained adapter. The Hub token comes from the environment or Colab
secrets and is never printed, logged or written to disk."""
from __future__ import annotations

import json
import os
from pathlib import Path

CARD = """---
library_name: peft
base_model: {base}
tags: [vision-language, inspection, unsloth, qeu_vlm]
---
# {name}

A {kind} of `{base}` fine-tuned with qeu_vlm to inspect a connector's 27 pins and answer in the five-line
format (image type, pin count, judgement, defect mode, defect position).

## Metrics

Scored on {n} test records (`qeu_vlm.score`; unparseable answers count as wrong).

| shot | format valid | judgement balanced acc. | mode acc. | position exact | within one pin |
|---|---|---|---|---|---|
{rows}

{note}
"""


def hub_token() -> str | None:
    """HF_TOKEN from the environment, else Colab's secret store; None when neither has one."""
    tok = os.environ.get("HF_TOKEN")
    if tok:
        return tok
    try:
        from google.colab import userdata  # type: ignore

        return userdata.get("HF_TOKEN")
    except Exception:                       # not on Colab, or the secret is not granted
        return None


def base_id(cfg) -> str:
    """The base model's Hub id for a preset, else the model as the config names it ("tiny", a folder)."""
    from .presets import PRESETS

    return PRESETS[cfg.model].hub_id if cfg.model in PRESETS else cfg.model


def model_card(run: str | Path, base: str, name: str) -> str:
    from .metrics import fmt_metric as f

    m = json.loads((Path(run) / "metrics_finetuned.json").read_text())
    rows = "\n".join(f"| {shot} | {f(s['format_valid'])} | {f(s['judgement_balanced_accuracy'])} | "
                     f"{f(s['mode_accuracy'])} | {f(s['position_exact'])} | {f(s['within_one_pin'])} |"
                     for shot, s in m["by_shot"].items())
    tiny = base == "tiny"
    return CARD.format(base=base, name=name, kind="smoke-test model" if tiny else "LoRA adapter",
                       n=m["all"]["n"], rows=rows,
                       note="CPU smoke figures from a tiny random model, not a real VLM." if tiny else "")


def write_model_card(run: str | Path, base: str, name: str) -> Path:
    """``run/adapter/README.md``: what ``push_adapter`` uploads; written alone in smoke mode to look at."""
    path = Path(run) / "adapter" / "README.md"
    path.write_text(model_card(run, base, name))
    return path


def push_adapter(run: str | Path, repo_id: str, base: str, private: bool = True) -> str:
    """Upload ``run/adapter`` (safetensors) with a model card carrying the metrics."""
    from huggingface_hub import HfApi

    token = hub_token()
    if not token:
        raise RuntimeError("no Hub token: set HF_TOKEN in the environment or in Colab's secrets (key icon)")
    adapter = Path(run) / "adapter"
    if not any(adapter.glob("*.safetensors")):
        raise FileNotFoundError(f"{adapter}: no .safetensors weights to push")
    write_model_card(run, base, repo_id)
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    api.upload_folder(folder_path=str(adapter), repo_id=repo_id, ignore_patterns=["training_args.bin"])
    return f"https://huggingface.co/{repo_id}"


def push_twin(run: str | Path, repo_id: str, private: bool = True, card: str | Path | None = None) -> str:
    """Upload the run's synthetic twin (both splits) as a Hub dataset, with its data card
    (``card``, default ``data_cards/synthetic_twin.md`` of a source checkout)."""
    import datasets
    from huggingface_hub import DatasetCard

    token = hub_token()
    if not token:
        raise RuntimeError("no Hub token: set HF_TOKEN in the environment or in Colab's secrets (key icon)")
    datasets.load_from_disk(str(Path(run) / "twin" / "dataset")).push_to_hub(repo_id, private=private, token=token)
    card = Path(card or Path(__file__).resolve().parent.parent / "data_cards" / "synthetic_twin.md")
    if card.exists():
        DatasetCard(card.read_text()).push_to_hub(repo_id, token=token)
    return f"https://huggingface.co/datasets/{repo_id}"


def export_merged(model, processor, out: str | Path, backend: str = "hf") -> Path:
    """Merge LoRA into the base weights and save (Unsloth's own merger on its backend)."""
    out = Path(out)
    if backend == "unsloth":
        model.save_pretrained_merged(str(out), processor, save_method="merged_16bit")
        return out
    merged = model.merge_and_unload() if hasattr(model, "merge_and_unload") else model
    merged.save_pretrained(out)
    processor.save_pretrained(out)
    return out
