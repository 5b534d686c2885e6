"""Training in several processes with ``accelerate launch`` and the project's own ``train`` command, on this CPU:
accelerate's multi-GPU launcher starts two processes, which train as one gloo group since there is no GPU."""
import json
import os
import shutil
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from qeu_vlm.config import Config
from qeu_vlm.training import TrainingError, check_processes

DDP = Path(__file__).resolve().parent.parent / "configs" / "accelerate" / "ddp.yaml"


def _launch(run: Path) -> str:
    with socket.socket() as s:                      # a free port: other launches may be running on this machine
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    done = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(DDP),
                           "--num_processes", "2", "--main_process_port", str(port),
                           "-m", "qeu_vlm", "train", "--run", str(run)],
                          capture_output=True, text=True, timeout=900, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done.stdout


@pytest.mark.slow
@pytest.mark.cpu_processes
def test_two_processes_train_save_once_resume_and_the_adapter_answers(tmp_path):
    from safetensors.torch import load_file

    from qeu_vlm.generation import generate
    from qeu_vlm.tools.steps import load_step, prepare

    run = tmp_path / "run"
    run.mkdir()
    cfg = replace(Config(run_dir=str(run)).smoke(), n_train=16, n_test=4, n_eval=4, n_inspect=2, one_shot_first=4,
                  max_steps=2, save_steps=1, eval_steps=0, full_finetune=False, inspect_shots=("zero",))
    cfg.save(run / "config.json")
    out = _launch(run)
    assert "process 0 of 2 (gloo)" in out and "process 1 of 2 (gloo)" in out        # both took part
    assert out.count("effective batch 4 = 2 per device x 2 processes x 1 accumulation") == 1
    stats = json.loads((run / "train_stats.json").read_text())
    assert (stats["processes"], stats["effective_batch"], stats["steps"]) == (2, 4, 2)
    log = json.loads((run / "log_history.json").read_text())
    assert [h["step"] for h in log if "loss" in h] == [1, 2]                        # one log, not one per process
    last = run / "checkpoints" / "checkpoint-2"
    assert sorted(p.name for p in last.glob("rng_state*")) == ["rng_state_0.pth", "rng_state_1.pth"]
    first = load_file(str(run / "adapter" / "adapter_model.safetensors"))
    assert any(v.abs().max() > 0 for k, v in first.items() if "lora_B" in k)      # LoRA B starts at zero

    # Cut after the first checkpoint: the same command resumes from it and ends where the whole run ended.
    shutil.rmtree(last)
    shutil.rmtree(run / "adapter")
    _launch(run)
    again = load_file(str(run / "adapter" / "adapter_model.safetensors"))
    assert first.keys() == again.keys() and all(torch.allclose(first[k], again[k], atol=1e-6) for k in first)

    cfg = Config.load(run / "config.json")
    model, processor = load_step(cfg, run, "hf", adapter=str(run / "adapter"))
    assert any("lora_" in n for n, _ in model.named_parameters())
    answers = generate(model, processor, prepare(cfg).infer["zero"], max_new_tokens=8, progress=False)
    assert len(answers) == 2 and all(isinstance(text, str) for text, _ in answers)   # random weights: any text


def test_more_processes_than_gpus_is_refused_before_any_work(tmp_path, monkeypatch):
    from qeu_vlm.tools.cli import main

    assert check_processes(gpus=0, env={"LOCAL_WORLD_SIZE": "2"}) == 2       # no GPU: CPU processes (gloo)
    assert check_processes(gpus=2, env={"LOCAL_WORLD_SIZE": "2"}) == 2
    assert check_processes(gpus=1, env={}) == 1
    run = tmp_path / "run"
    run.mkdir()
    Config(run_dir=str(run)).smoke().save(run / "config.json")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(TrainingError, match=r"4 processes were launched on this machine but it has 2 CUDA GPUs.*"
                                            r"--num_processes 2"):
        main(["train", "--run", str(run)])
    assert sorted(p.name for p in run.iterdir()) == ["config.json"]          # no twin, no model, nothing trained
