import json
import subprocess
import sys


def test_replay_main_job(tmp_path):
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "qeu_vlm", "replay", "--out", str(out), "--n-train", "30",
                        "--n-test", "10", "--one-shot-first", "5"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    s = json.loads((out / "summary.json").read_text())
    assert s["CYLNimages_train_1015"]["conversations"] == {"one": 5, "zero": 25}
    assert s["CYLNimages_train_1015"]["images_per_conversation"] == {"3": 5, "2": 25}
    assert (out / "report.md").exists()


def test_validate_command_reports_problems(tmp_path, twin_dir):
    import shutil
    d = tmp_path / "folder"
    shutil.copytree(twin_dir / "drive" / "CYLNimages_train_1015", d)
    lines = (d / "metadata.csv").read_text().splitlines()
    lines[2] = lines[2].replace("CYLN_", "CYLX_")
    (d / "metadata.csv").write_text("\n".join(lines) + "\n")
    r = subprocess.run([sys.executable, "-m", "qeu_vlm", "validate", str(d)], capture_output=True, text=True)
    assert r.returncode == 1 and "row 1, field 'type'" in r.stdout
