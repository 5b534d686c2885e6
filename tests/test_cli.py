import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow          # trains, or runs commands end to end


def test_replay_main_job(tmp_path):
    """synth -> convert -> tiny model -> train with eval -> plot -> inspect zero/one-shot -> score -> report."""
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "qeu_vlm", "replay", "--out", str(out), "--n-train", "24",
                        "--n-test", "8", "--one-shot-first", "6", "--max-steps", "2", "--n-inspect", "4"],
                       capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((out / "metrics.json").read_text())
    for name in ("base", "finetuned"):
        assert set(m[name]["by_shot"]) == {"zero", "one"}
        assert m[name]["all"]["n"] == 8 and set(m[name]["by_type"]) <= {"CYLN_DST", "CYLN_RAW"}
    rows = [json.loads(x) for x in (out / "predictions_finetuned_one.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and {"text", "parsed", "truth", "shot", "seconds"} <= set(rows[0])
    for f in ("report.md", "learning_curves.png", "evaluation_base.png", "evaluation_finetuned.png",
              "log_history.json", "adapter/model.safetensors", "config.json"):
        assert (out / f).exists(), f
    assert "CPU smoke figures" in (out / "report.md").read_text()


def test_validate_command_reports_problems(tmp_path, twin_dir):
    import shutil
    d = tmp_path / "folder"
    shutil.copytree(twin_dir / "drive" / "CYLNimages_train_1015", d)
    lines = (d / "metadata.csv").read_text().splitlines()
    lines[2] = lines[2].replace("CYLN_", "CYLX_")
    (d / "metadata.csv").write_text("\n".join(lines) + "\n")
    r = subprocess.run([sys.executable, "-m", "qeu_vlm", "validate", str(d)], capture_output=True, text=True)
    assert r.returncode == 1 and "row 1, field 'type'" in r.stdout


def test_step_commands_share_the_run_folder(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    py = [sys.executable, "-m", "qeu_vlm"]
    r = subprocess.run(py + ["replay", "--out", str(out), "--n-train", "24", "--n-test", "8", "--max-steps", "2",
                             "--n-inspect", "2", "--one-shot-first", "4"], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    png = (out / "learning_curves.png").read_bytes()
    (out / "learning_curves.png").unlink()
    r = subprocess.run(py + ["plot", "--run", str(out)], capture_output=True, text=True, env=env)
    assert r.returncode == 0 and (out / "learning_curves.png").read_bytes() == png
    r = subprocess.run(
        py + ["inspect", "--run", str(out), "--which", "finetuned"], capture_output=True, text=True, env=env
    )
    assert r.returncode == 0, r.stderr[-2000:]
    again = json.loads((out / "metrics_finetuned.json").read_text())
    assert again["by_shot"] == json.loads((out / "metrics.json").read_text())["finetuned"]["by_shot"]
    r = subprocess.run(py + ["score", str(out / "predictions_finetuned_one.jsonl")], capture_output=True, text=True)
    assert r.returncode == 0 and json.loads(r.stdout)["all"]["n"] == 2


def test_flags_are_made_from_the_settings_dataclasses_and_all_reach_them(tmp_path):
    from dataclasses import fields

    from qeu_vlm.tools.cli import parser, replay_config
    from qeu_vlm.config import Config

    p = parser()
    replay = p._subparsers._group_actions[0].choices["replay"]
    flags = {a.dest for a in replay._actions}
    assert {f.name for f in fields(Config)} - {"run_dir", "smoke_mode"} <= flags
    a = p.parse_args(["replay", "--out", str(tmp_path), "--full", "--max-steps", "3", "--n-inspect", "2",
                      "--no-finetune-vision", "--image-size", "224", "154", "--inspect-shots", "zero"])
    cfg = replay_config(a)
    assert (cfg.max_steps, cfg.n_inspect, cfg.finetune_vision, cfg.image_size, cfg.inspect_shots) == (
        3, 2, False, (224, 154), ("zero",))
    assert cfg.model == Config().model and not cfg.smoke_mode          # --full: the preset's recipe, flags on top
    smoke = replay_config(p.parse_args(["replay", "--out", str(tmp_path), "--max-steps", "7"]))
    assert smoke.smoke_mode and smoke.model == "tiny" and smoke.max_steps == 7 and smoke.n_train == 200


def test_synth_flags_reach_the_twin(tmp_path):
    from qeu_vlm.tools.cli import main

    main(["synth", "--out", str(tmp_path / "t"), "--n-train", "10", "--n-test", "4", "--passed-fraction", "0.5",
          "--defect-pins", "1U", "9C", "--n-average", "4", "--n-pool", "2"])
    summary = json.loads((tmp_path / "t" / "summary.json").read_text())
    assert summary["config"]["passed_fraction"] == 0.5 and summary["config"]["defect_pins"] == ["1U", "9C"]
