"""Save, export and publish a trained adapter. The Hub token comes from the environment or Colab
secrets and is never printed, logged or written to disk."""
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


def card_for_display(card: str) -> str:
    """The card as a notebook shows it: the YAML header in a code block (as Markdown it would draw a rule and a
    large heading), the rest as Markdown."""
    if card.startswith("---\n"):
        header, _, body = card[4:].partition("\n---\n")
        return f"```yaml\n{header}\n```\n\n{body}"
    return card


def write_model_card(run: str | Path, base: str, name: str, full_model: bool = False) -> Path:
    """``run/adapter/README.md``: what ``push_adapter`` uploads; written alone in smoke mode to look at."""
    path = Path(run) / "adapter" / "README.md"
    model_card(run, base, name, full_model).save(path)
    return path


def push_adapter(run: str | Path, repo_id: str, base: str, private: bool = True, full_model: bool = False) -> str:
    """Upload ``run/adapter`` (safetensors) with a model card carrying the metrics."""
    from huggingface_hub import HfApi

    token = _token()
    adapter = Path(run) / "adapter"
    if not any(adapter.glob("*.safetensors")):
        raise FileNotFoundError(f"{adapter}: no .safetensors weights to push")
    write_model_card(run, base, repo_id, full_model)
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


def export_gguf(model, processor, out: str | Path, backend: str, quantization_method: str = "q4_k_m") -> dict:
    """GGUF files with Unsloth's exporter (only a model loaded by Unsloth has it): ``{"model": path, "mmproj": path}``.

    For a vision model Unsloth (2026.10) writes the 16-bit merge into ``out`` and two GGUF files beside it, in
    ``{out}_gguf/``: the language model, quantised (``<Model>.Q4_K_M.gguf``), and the vision projector, unquantised
    (``<Model>.BF16-mmproj.gguf``, ``F16`` on a GPU without bf16 such as a T4), plus an Ollama ``Modelfile``.
    llama.cpp takes the pair: ``llama-mtmd-cli -m <model>.gguf --mmproj <mmproj>.gguf`` or ``llama-server`` with the
    same two flags. Ollama does not take a separate mmproj file (Unsloth's own note): for Ollama, build from the
    merged 16-bit folder with the Modelfile (``ollama create NAME -f Modelfile``). Unsloth treats the projector as
    optional and keeps a text-only export when it fails; here that is an error, since the model could not see."""
    if backend != "unsloth" or not hasattr(model, "save_pretrained_gguf"):
        raise RuntimeError("GGUF export needs a model loaded by Unsloth (backend 'unsloth', a CUDA GPU)")
    model.save_pretrained_gguf(str(out), processor, quantization_method=quantization_method)
    folder = Path(f"{out}_gguf")
    files = sorted(folder.glob("*.gguf"))
    mmproj = [f for f in files if f.name.lower().endswith("-mmproj.gguf")]
    text = [f for f in files if f not in mmproj and f".{quantization_method.upper()}." in f.name]
    if not mmproj or not text:
        raise RuntimeError(f"{folder}: Unsloth wrote {[f.name for f in files]}; a vision model needs the "
                           f"{quantization_method} language model and the -mmproj projector")
    return {"model": text[0], "mmproj": mmproj[0]}


def export_merged(model, processor, out: str | Path, backend: str = "hf") -> Path:
    """Merge LoRA into the base weights and save them with the processor: Unsloth's own merger on its backend
    (16-bit), transformers + peft's ``merge_and_unload`` elsewhere (in the dtype loaded: 16-bit on a GPU, 32-bit on
    a CPU; a fully trained model is saved as it is). The folder is checked to load back with its processor, which
    merged saves of Qwen-VL models have been known to lose."""
    from ..model import load_processor

    out = Path(out)
    if backend == "unsloth":
        model.save_pretrained_merged(str(out), processor, save_method="merged_16bit")
    else:
        merged = model.merge_and_unload() if hasattr(model, "merge_and_unload") else model
        merged.save_pretrained(out)
        processor.save_pretrained(out)
    try:
        load_processor(str(out))
    except (OSError, ValueError) as e:
        raise RuntimeError(f"{out}: the merged model was saved but its processor does not load back ({e})") from e
    return out


def push_merged(model, processor, repo_id: str, backend: str, private: bool = True) -> str:
    """Upload the merged 16-bit model with its processor (beside ``push_adapter``, which uploads the adapter alone):
    Unsloth's ``push_to_hub_merged`` on its backend, ``merge_and_unload`` + ``push_to_hub`` elsewhere. The
    caller pushes nothing in smoke mode (notebook 06)."""
    token = _token()
    if backend == "unsloth":
        model.push_to_hub_merged(repo_id, processor, save_method="merged_16bit", token=token, private=private)
    else:
        merged = model.merge_and_unload() if hasattr(model, "merge_and_unload") else model
        merged.push_to_hub(repo_id, token=token, private=private)
        processor.push_to_hub(repo_id, token=token, private=private)
    return f"https://huggingface.co/{repo_id}"
