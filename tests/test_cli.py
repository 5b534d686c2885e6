import json
import os
import subprocess
import sys

import pytest


def test_replay_main_job(tmp_path):
    """synth -> convert -> tiny model -> train with eval -> plot -> inspect zero/one-shot -> score -> report."""
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "qeu_vlm", "replay", "--out", str(out), "--n-train", "24",
                        "--n-test", "8", "--one-shot-first", "6", "--steps", "2", "--n-inspect", "4"],
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
    r = subprocess.run(py + ["replay", "--out", str(out), "--n-train", "24", "--n-test", "8", "--steps", "2",
                             "--n-inspect", "2", "--one-shot-first", "4"], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    png = (out / "learning_curves.png").read_bytes()
    (out / "learning_curves.png").unlink()
    r = subprocess.run(py + ["plot", "--run", str(out)], capture_output=True, text=True, env=env)
    assert r.returncode == 0 and (out / "learning_curves.png").read_bytes() == png
    r = subprocess.run(py + ["inspect", "--run", str(out), "--which", "finetuned"], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    again = json.loads((out / "metrics_finetuned.json").read_text())
    assert again["by_shot"] == json.loads((out / "metrics.json").read_text())["finetuned"]["by_shot"]
    r = subprocess.run(py + ["score", str(out / "predictions_finetuned_one.jsonl")], capture_output=True, text=True)
    assert r.returncode == 0 and json.loads(r.stdout)["all"]["n"] == 2


def test_learn_command_writes_the_side_by_side_report(tmp_path):
    from qeu_vlm.cli import main

    out = tmp_path / "learn"
    assert main(["learn", "--out", str(out), "--minutes", "0.2", "--n-train", "80", "--n-test", "12", "--steps", "4"]) == 0
    text = (out / "learn_report.md").read_text()
    for row in ("| learn |", "| ablation |", "| classic baseline |", "Answer distribution", "judgement_balanced_accuracy <= 0.6"):
        assert row in text
    stats = json.loads((out / "train_stats.json").read_text())
    assert stats["steps"] <= 4 and (out / "ablation" / "predictions_finetuned_zero.jsonl").exists()
    # the vision warm-up shrinks with the budget: 500 steps at 10 minutes, 10 at 0.2
    assert json.loads((out / "vision_warmup.json").read_text())["log"][-1]["step"] == 10
    assert stats["vision_warmup_s"] > 0 and "| vision warm-up s |" in text
    assert json.loads((out / "config.json").read_text())["dst_fraction"] == 1.0


@pytest.mark.parametrize("learn, ablation, says", [
    (0.97, 0.50, "uses the test image"),
    (0.79, 0.50, "reads the test image (0.790 with it, 0.500 without), though it has not reached its target"),
    (0.50, 0.50, "proves nothing while the learn run itself is at chance level"),
    (0.97, 0.90, "does not use the test image"),
])
def test_learn_report_judges_the_ablation_against_the_learn_run(learn, ablation, says):
    from qeu_vlm.pipeline import learn_report

    def run(judgement):
        return {"scores": {"format_valid": 1.0, "judgement_balanced_accuracy": judgement, "mode_accuracy": 0.3,
                           "position_exact": 0.04, "within_one_pin": 0.2, "distinct_positions": 1},
                "train": {"steps": 10, "runtime_s": 1.0}, "loss": {"last_train_loss": 0.1},
                "answer_distribution": {"passed": 1}, "test_records": 1}

    text = learn_report({"learn": run(learn), "ablation": run(ablation), "seconds": 1.0})
    assert says in text.split("- ablation")[1].splitlines()[0]
