"""Batch inspection through vLLM (``qeu_vlm.vllm_engine``), run in the vLLM lane (``STACK=vllm bash scripts/test.sh``).

The tiny model answers the same conversations through vLLM and through transformers' ``generate``, alone and with
LoRA adapters made by the project's own LoRA setup (``model.load_model``: its targets, language and vision tower)
with their B matrices drawn at random (``benchmarks.vllm.random_adapter``; peft starts B at zero, which would change
no answer, and a few training steps would take longer and prove nothing more about serving). Greedy answers must be
equal, token for token.
"""
import json
from pathlib import Path

import pytest

from qeu_vlm.config import Config
from qeu_vlm.conversation import convert, shot_plan
from qeu_vlm.data import load_pools
from qeu_vlm.generation import predict
from qeu_vlm.metrics import score_rows
from qeu_vlm.model import load_model
from qeu_vlm.offline.tiny_model import build_tiny_vlm      # the one place these tests name the tiny model's builder
from qeu_vlm import vllm_engine
from qeu_vlm.vllm_engine import VllmEngine, VllmError

from benchmarks.vllm import random_adapter

N_NEW = 16


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny model with 1/sqrt(width) weights: its greedy answers differ from record to record (at the smoke
    size's 0.02 every answer is blank lines, and equal blank lines would prove little)."""
    return build_tiny_vlm(tmp_path_factory.mktemp("vllm") / "tiny", seed=0, lecun_init=True)


@pytest.fixture(scope="module")
def cases(twin, twin_dir):
    """(records, inference conversations, truths): four zero-shot, four one-shot (star turn, three images)."""
    from qeu_vlm.answer import answer_for

    recs = twin.splits["CYLNimages_test_1015"][:8]
    convs = convert(recs, load_pools(twin_dir / "drive"), shot_plan(8, one_shot_first=4), seed=0, with_answer=False)
    return recs, convs, [answer_for(r) for r in recs]


@pytest.fixture(scope="module")
def adapters(tiny, tmp_path_factory):
    d = tmp_path_factory.mktemp("adapters")
    return {"language+tower": random_adapter(tiny, d / "both", vision=True, language=True, seed=1),
            "tower": random_adapter(tiny, d / "tower", vision=True, language=False, seed=2)}


@pytest.fixture(scope="module")
def engine(tiny):
    return VllmEngine(tiny, limit_mm_per_prompt=3, max_lora_rank=8)


def transformers_rows(tiny, cases, adapter, path) -> list[dict]:
    model, proc = load_model(Config(model=str(tiny), backend="hf"), "hf", adapter=adapter)
    return predict(model, proc, *cases, path, max_new_tokens=N_NEW, progress=False)


def _texts(rows):
    return [r["text"] for r in rows]


@pytest.mark.vllm
@pytest.mark.parametrize("which", [None, "language+tower", "tower"])
def test_greedy_answers_equal_transformers(which, tiny, cases, adapters, engine, tmp_path):
    """Base alone, base + language and tower LoRA, base + tower LoRA alone (vLLM would drop it silently without
    enable_tower_connector_lora): vLLM's rows are transformers' rows, seconds aside."""
    adapter = adapters[which] if which else None
    hf = transformers_rows(tiny, cases, adapter, tmp_path / "hf.jsonl")
    rows = vllm_engine.predict(tiny, *cases, tmp_path / "vllm.jsonl", adapter=adapter, max_new_tokens=N_NEW,
                               engine=engine)
    assert len(set(_texts(hf))) >= 4                 # answers that differ by record: their equality means something
    assert [{**r, "seconds": 0} for r in rows] == [{**r, "seconds": 0} for r in hf]
    assert [json.loads(line) for line in (tmp_path / "vllm.jsonl").read_text().splitlines()] == rows
    if which:                                         # the adapter changes the answers it is served with
        base = engine.generate(cases[1], max_new_tokens=N_NEW)
        assert sum(a != t for (a, _), t in zip(base, _texts(rows))) >= 4


@pytest.mark.vllm
def test_a_one_shot_batch_is_scored_like_the_transformers_one(tiny, cases, adapters, engine, tmp_path):
    recs, convs, truths = cases
    one = [i for i, c in enumerate(convs) if c["shot"] == "one"]
    assert one and all(len(vllm_engine.images_of(convs[i])) == 3 for i in one)
    batch = ([recs[i] for i in one], [convs[i] for i in one], [truths[i] for i in one])
    rows = vllm_engine.predict(tiny, *batch, tmp_path / "one.jsonl", adapter=adapters["language+tower"],
                               max_new_tokens=N_NEW, engine=engine)
    assert {r["shot"] for r in rows} == {"one"}
    assert score_rows(rows) == score_rows(transformers_rows(tiny, batch, adapters["language+tower"],
                                                            tmp_path / "hf.jsonl"))


# -- bad input: each named before any work (no engine is built) ------------------------------------------------------

@pytest.fixture
def no_engine(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("an engine was built before the bad input was named")
    monkeypatch.setattr(vllm_engine, "VllmEngine", refuse)


def test_vllm_missing_is_named_with_the_install_command(monkeypatch, cases, tmp_path):
    monkeypatch.setattr(vllm_engine, "find_spec", lambda name: None)
    with pytest.raises(VllmError, match=r"vLLM is not installed .*bash scripts/install_vllm_stack.sh"):
        vllm_engine.predict(tmp_path, *cases, tmp_path / "p.jsonl")


@pytest.mark.vllm
def test_a_limit_below_the_conversations_images_is_named(no_engine, tiny, cases, tmp_path):
    with pytest.raises(VllmError, match=r"conversation 0 \(one-shot\) holds 3 images, above "
                                        r"limit_mm_per_prompt=2; give at least 3"):
        vllm_engine.predict(tiny, *cases, tmp_path / "p.jsonl", limit_mm_per_prompt=2)


@pytest.mark.vllm
def test_an_adapter_of_another_base_is_named(no_engine, tiny, cases, adapters, tmp_path):
    other = build_tiny_vlm(tmp_path / "other", seed=1, lecun_init=True)
    with pytest.raises(VllmError, match=r"an adapter built for the base '.*tiny', not for '.*other', the base served"):
        vllm_engine.predict(other, *cases, tmp_path / "p.jsonl", adapter=adapters["tower"])


def _peft_adapter(tiny, out: Path, **lora) -> Path:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    model = get_peft_model(AutoModelForImageTextToText.from_pretrained(tiny), LoraConfig(**lora))
    model.save_pretrained(out)
    return out


UNSERVABLE = {
    "the output head": (dict(r=8, target_modules=["lm_head", "q_proj"]),
                        r"1 of its layers: lm_head \(the output head\)"),
    "DoRA": (dict(r=8, target_modules=["q_proj"], use_dora=True), r"vLLM does not yet support DoRA"),
    "rank above 512": (dict(r=640, target_modules=["q_proj"]), r"LoRA rank 640 is above 512, the largest vLLM serves"),
}


@pytest.mark.vllm
@pytest.mark.parametrize("kind", UNSERVABLE)
def test_an_adapter_vllm_cannot_serve_is_named_with_why(no_engine, kind, tiny, cases, tmp_path):
    lora, why = UNSERVABLE[kind]
    adapter = _peft_adapter(tiny, tmp_path / "adapter", **lora)
    with pytest.raises(VllmError, match=why):
        vllm_engine.predict(tiny, *cases, tmp_path / "p.jsonl", adapter=adapter)


@pytest.mark.vllm
def test_vllm_itself_refuses_the_output_head_the_check_names(tiny, cases, engine, tmp_path):
    """The check is vLLM's rule, not a stricter one: past it, vLLM's own loader refuses the same adapter."""
    from vllm import SamplingParams
    from vllm.lora.request import LoRARequest

    adapter = _peft_adapter(tiny, tmp_path / "adapter", **UNSERVABLE["the output head"][0])
    with pytest.raises(ValueError, match="lm_head"):
        engine.llm.generate({"prompt": "pin"}, SamplingParams(max_tokens=2),
                            lora_request=LoRARequest("head", 99, str(adapter)), use_tqdm=False)


def test_the_engine_choice_reaches_the_inspect_command():
    from qeu_vlm.tools.cli import parser

    assert parser().parse_args(["inspect", "--run", "r"]).engine == "transformers"
    assert parser().parse_args(["inspect", "--run", "r", "--engine", "vllm"]).engine == "vllm"


@pytest.mark.vllm
def test_the_benchmark_prints_both_engines_side_by_side():
    """The command end to end, in its own process (this one holds an engine already); its figures are read, not
    tested."""
    import re
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "benchmarks.vllm", "--quick"], cwd=Path(__file__).parent.parent,
                          capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    assert re.search(r"machine: .*cores, torch threads \d+, .*load average [\d.]+ before.*date \d{4}-\d\d-\d\d",
                     done.stdout)
    for model in ("base", r"base \+ LoRA \(language \+ tower\)"):
        assert re.search(rf"\| {model} \| 6 \(2 one-shot\) \| [\d.]+ \([\d.]+ s\) \| [\d.]+ \([\d.]+ s\) \| "
                         rf"[\d.]+x \| 6/6 \|", done.stdout), done.stdout


@pytest.mark.vllm
def test_the_inspect_command_on_vllm_writes_what_transformers_writes(tmp_path):
    """``python -m qeu_vlm inspect --engine vllm`` as a user runs it (no __main__ guard), on a smoke run folder:
    the same predictions and scores as the default engine."""
    import subprocess
    import sys
    from dataclasses import replace

    from qeu_vlm.tools.steps import inspect_step

    cfg = replace(Config(run_dir=str(tmp_path / "run")).smoke(), n_inspect=4)
    (tmp_path / "run").mkdir()
    cfg.save(tmp_path / "run" / "config.json")
    inspect_step(cfg, "base")
    scores = (tmp_path / "run" / "metrics_base.json").read_text()
    rows = {shot: (tmp_path / "run" / f"predictions_base_{shot}.jsonl").read_text() for shot in cfg.inspect_shots}
    done = subprocess.run([sys.executable, "-m", "qeu_vlm", "inspect", "--run", str(tmp_path / "run"), "--which",
                           "base", "--engine", "vllm"], cwd=tmp_path, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "run" / "metrics_base.json").read_text() == scores
    for shot, text in rows.items():
        hf, vl = ([json.loads(line) for line in t.splitlines()]
                  for t in (text, (tmp_path / "run" / f"predictions_base_{shot}.jsonl").read_text()))
        assert [{**r, "seconds": 0} for r in vl] == [{**r, "seconds": 0} for r in hf]
