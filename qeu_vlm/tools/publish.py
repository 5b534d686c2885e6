"""Publish a trained adapter (its model card, the push) and the synthetic twin. The Hub token comes from the
environment or Colab secrets and is never printed, logged or written to disk."""
from __future__ import annotations

import json
from pathlib import Path

# The card's body, a jinja2 template that huggingface_hub's ModelCard renders under the YAML header of ModelCardData.
CARD = """---
{{ card_data }}
---
# {{ name }}

A {{ kind }} of `{{ base }}` fine-tuned with qeu_vlm to inspect a connector's 27 pins and answer in the five-line
format (image type, pin count, judgement, defect mode, defect position).

## Metrics

Scored on {{ records }} test records, each inspected {{ shots }} ({{ n }} answers in all; `qeu_vlm.score`,
unparseable answers count as wrong; `n/a`: undefined on these records).

{{ table }}
{% if tiny %}
CPU smoke figures from a tiny random model, not a real VLM.
{% endif %}"""
COLUMNS = {"format_valid": "format valid", "judgement_balanced_accuracy": "judgement balanced acc.",
           "mode_accuracy": "mode acc.", "position_exact": "position exact", "within_one_pin": "within one pin"}


def base_id(cfg) -> str:
    """The base model's Hub id for a preset, else the model as the config names it ("tiny", a folder)."""
    from ..presets import PRESETS

    return PRESETS[cfg.model].hub_id if cfg.model in PRESETS else cfg.model


def model_card(run: str | Path, base: str, name: str, full_model: bool = False):
    """The model card (``huggingface_hub.ModelCard``): its YAML header (library, base model, tags) and the metrics
    by shot mode. ``full_model``: all weights were trained (the smoke model), so the folder is a transformers model,
    not a peft adapter."""
    from huggingface_hub import ModelCard, ModelCardData

    from ..metrics import fmt_metric, markdown_table

    m = json.loads((Path(run) / "metrics_finetuned.json").read_text())
    table = markdown_table(["shot", *COLUMNS.values()],
                           [[shot, *(fmt_metric(s[k]) for k in COLUMNS)] for shot, s in m["by_shot"].items()])
    per_shot = {s.get("n") for s in m["by_shot"].values()} - {None}
    records = per_shot.pop() if len(per_shot) == 1 else m["all"]["n"]      # every shot mode saw the same records
    tiny = base == "tiny"
    data = ModelCardData(library_name="transformers" if full_model or tiny else "peft",
                         base_model=base if "/" in base else None,        # the Hub takes only repo ids
                         tags=["vision-language", "inspection", "unsloth", "qeu_vlm"])
    return ModelCard.from_template(
        data, template_str=CARD, name=name, base=base, records=records, n=m["all"]["n"], table=table, tiny=tiny,
        kind="smoke-test model" if tiny else "fully fine-tuned model" if full_model else "LoRA adapter",
        shots=" and ".join(f"{s}-shot" for s in m["by_shot"]))


def push_adapter(run: str | Path, repo_id: str, base: str, private: bool = True, full_model: bool = False) -> str:
    """Upload ``run/adapter`` (safetensors) with a model card carrying the metrics."""
    from huggingface_hub import HfApi

    token = _token()
    adapter = Path(run) / "adapter"
    if not any(adapter.glob("*.safetensors")):
        raise FileNotFoundError(f"{adapter}: no .safetensors weights to push")
    model_card(run, base, repo_id, full_model).save(adapter / "README.md")
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    api.upload_folder(folder_path=str(adapter), repo_id=repo_id, ignore_patterns=["training_args.bin"])
    return f"https://huggingface.co/{repo_id}"


def push_twin(run: str | Path, repo_id: str, private: bool = True, card: str | Path | None = None) -> str:
    """Upload the run's synthetic twin (both splits) as a Hub dataset, with its data card
    (``card``, default the ``synthetic_twin.md`` shipped with the package, or of a source checkout)."""
    import datasets
    from huggingface_hub import DatasetCard

    token = _token()
    datasets.load_from_disk(str(Path(run) / "twin" / "dataset")).push_to_hub(repo_id, private=private, token=token)
    card = Path(card) if card else twin_card()
    DatasetCard(card.read_text()).push_to_hub(repo_id, token=token)
    return f"https://huggingface.co/datasets/{repo_id}"


def twin_card() -> Path:
    """The twin's data card: inside the installed package, else in the source checkout; an error when neither
    has it, never a dataset pushed without its card."""
    here = Path(__file__).resolve().parent.parent          # the package folder
    for path in (here / "data_cards" / "synthetic_twin.md", here.parent / "data_cards" / "synthetic_twin.md"):
        if path.exists():
            return path
    raise FileNotFoundError("synthetic_twin.md: the twin's data card is not installed; reinstall qeu_vlm")


def _token() -> str:
    from huggingface_hub import get_token

    token = get_token()          # HF_TOKEN, Colab's secret store (the key icon), or a saved login
    if not token:
        raise RuntimeError("no Hub token: set HF_TOKEN in the environment or in Colab's secrets (key icon)")
    return token
