"""vLLM against transformers' ``generate``, side by side: ``python -m benchmarks.vllm [--quick]``, in the vLLM lane's
environment (``bash scripts/install_vllm_stack.sh``, then ``.venv-vllm/bin/python -m benchmarks.vllm``).

The tiny model (1/sqrt(width) weights, so answers differ by record) answers the same conversations of the twin's test
split (a third one-shot: three images) greedily, alone and with a LoRA adapter on its language model and vision tower
(the project's LoRA targets, B drawn at random). ``generate`` runs in batches of ``Config.inspect_batch_size``; vLLM
takes the whole list. Each is warmed up first; answers per second and the ratio come from one run, and the answers
are compared. ``--quick`` shrinks the counts (for the test suite: it proves the command runs, not the figures).
"""
from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from datetime import date
from pathlib import Path


def random_adapter(base: Path, out: Path, vision: bool, language: bool, seed: int, rank: int = 8) -> Path:
    """An adapter as training saves one (``model.load_model``'s LoRA targets), its B matrices drawn at random:
    peft starts them at zero, which would change no answer."""
    import torch

    from qeu_vlm.config import Config
    from qeu_vlm.model import load_model

    cfg = Config(model=str(base), backend="hf", lora_r=rank, lora_alpha=rank, finetune_vision=vision,
                 finetune_language=language, seed=seed)
    model, _ = load_model(cfg, "hf")
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.2)
    model.save_pretrained(out / "adapter")
    return out / "adapter"


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def run(quick: bool = False, n: int = 64, max_new_tokens: int = 48) -> list[tuple]:
    import torch

    from qeu_vlm.config import Config
    from qeu_vlm.conversation import convert, shot_plan
    from qeu_vlm.data import load_pools
    from qeu_vlm.generation import generate
    from qeu_vlm.model import load_model
    from qeu_vlm.twin.synth import SynthConfig, write_twin
    from qeu_vlm.offline.tiny_model import build_tiny_vlm
    from qeu_vlm.vllm_engine import VllmEngine

    n, load = 6 if quick else n, os.getloadavg()[0]      # other work on the machine slows both engines
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        twin = write_twin(SynthConfig(n_train=8, n_test=n, seed=0).generate(progress=False), d / "twin")
        import datasets

        recs = datasets.load_from_disk(str(twin / "dataset"))["CYLNimages_test_1015"]
        convs = convert(recs, load_pools(twin / "drive"), shot_plan(n, one_shot_first=n // 3), with_answer=False)
        tiny = build_tiny_vlm(d / "tiny", seed=0, lecun_init=True)
        cases = {"base": None, "base + LoRA (language + tower)": random_adapter(tiny, d, True, True, seed=1)}
        batch = Config.inspect_batch_size
        hf = {}
        for name, adapter in cases.items():     # transformers first: the engine below binds this process's threads
            model, proc = load_model(Config(model=str(tiny), backend="hf"), "hf", adapter=adapter)
            generate(model, proc, convs[:2], batch_size=2, max_new_tokens=max_new_tokens, progress=False)
            hf[name] = _timed(lambda: generate(model, proc, convs, batch_size=batch, max_new_tokens=max_new_tokens,
                                               progress=False))
        engine = VllmEngine(tiny, limit_mm_per_prompt=3, max_lora_rank=8)
        rows = []
        for name, adapter in cases.items():
            engine.generate(convs[:2], adapter, max_new_tokens)
            dt, answers = _timed(lambda: engine.generate(convs, adapter, max_new_tokens))
            t_hf, hf_answers = hf[name]
            same = sum(a == b for (a, _), (b, _) in zip(answers, hf_answers))
            rows.append((name, f"{n} ({n // 3} one-shot)", f"{n / dt:.1f} ({dt:.1f} s)",
                         f"{n / t_hf:.1f} ({t_hf:.1f} s)", f"{t_hf / dt:.1f}x", f"{same}/{n}"))
        threads = torch.get_num_threads()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch threads {threads}, Python "
          f"{platform.python_version()}, load average {load:.1f} before, {os.getloadavg()[0]:.1f} after; date "
          f"{date.today()}; max_new_tokens {max_new_tokens}, generate batch {batch}"
          f"{' (quick: counts shrunk, figures not comparable)' if quick else ''}")
    return rows


def main(argv=None):
    a = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    a.add_argument("--quick", action="store_true")
    a.add_argument("--n", type=int, default=64, help="conversations")
    args = a.parse_args(argv)
    rows = run(args.quick, args.n)
    print("| model | conversations | vLLM answers/s | generate answers/s | vLLM / generate | same answers |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    return rows


if __name__ == "__main__":
    main()
