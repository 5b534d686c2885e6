"""The main job (``python -m qeu_vlm main-job``) in smoke mode: its report page, reruns, Ctrl-C, bad run folders.

Whether the full-size job learns is a benchmark (``python -m benchmarks.main_job``), not a timed test."""
import json
import re

import pytest
import torch

from qeu_vlm.files import OutputFolderError, check_writable
from qeu_vlm.tools import cli
from qeu_vlm.tools.main_job import MainJobError, main_job_config, run_main_job
from qeu_vlm.tools.report import main_job_html


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    out = tmp_path_factory.mktemp("main_job") / "run"
    return out, run_main_job(out, seed=0, smoke=True)


@pytest.mark.slow
def test_the_main_job_writes_a_self_contained_report_page_beside_its_metrics(job):
    out, m = job
    assert sorted(p.name for p in out.parent.iterdir()) == ["run"]          # no .partial left behind
    page = (out / "report.html").read_text()
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["before"] == m["before"] and set(saved["targets"]) == {
        "format_valid", "judgement_balanced_accuracy", "position_exact", "distinct_positions"}
    # every figure is inside the page: no link or source to a file beside it
    sources = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    for what in ("before training", "after training", "classic baseline", "Learning curves", "What ran",
                 m["commit"], "vision warm-up step", "patch_embed and blocks frozen"):
        assert what in page, what
    assert 0 < len(m["examples"]) <= 6 and page.count("<pre>") == 2 * len(m["examples"])
    assert str(out) not in page and ".partial" not in page                # no machine path in what people read
    stages = m["stages_s"]
    assert {"vision warm-up", "fine-tuning", "inspect before training", "inspect after training"} <= set(stages)
    assert json.loads((out / "config.json").read_text())["run_dir"] == str(out)


@pytest.mark.slow
def test_the_patch_embedding_is_never_trained_and_the_merger_is(job):
    from safetensors.torch import load_file

    from qeu_vlm.offline.pretrain import PRETRAINED

    out, _ = job
    saved, base = load_file(out / "adapter" / "model.safetensors"), load_file(PRETRAINED / "model.safetensors")
    parts = {part: [k for k in base if f"visual.{part}." in k] for part in ("patch_embed", "merger")}
    assert all(parts.values()) and all(k in saved for ks in parts.values() for k in ks)
    assert all(torch.equal(saved[k].float(), base[k].float()) for k in parts["patch_embed"])
    assert any(not torch.equal(saved[k].float(), base[k].float()) for k in parts["merger"])


def test_answers_are_shown_as_written_never_as_markup(tmp_path):
    from PIL import Image

    for name in ("learning_curves.png", "evaluation_finetuned.png", "record_001.png"):
        Image.new("RGB", (4, 4)).save(tmp_path / name)
    scores = {"format_valid": 1.0}
    m = {"model": "tiny-learn", "parameters": 4_000_000, "train_conversations": 8, "fine_tuning_steps": 2,
         "test_records": 2, "test_passed": 1, "seconds": 1.0, "date": "today", "commit": "abc", "device": "a & <b>",
         "seed": 0, "threads": 2, "settings": {"twin_look": "rendered", "recipe": {"warmup_steps": 3}},
         "vision_warmup": {"steps": 3, "accuracy": 1.0,
                           "log": [{"step": 3, "loss": 0.1, "accuracy": 1.0}]},
         "before": scores, "after": scores, "baseline": scores, "answer_distribution_after": {None: 2},
         "targets": {"format_valid": {"at_least": 0.95, "value": 1.0, "met": True}}, "stages_s": {"fine-tuning": 1},
         "examples": [{"group": "passed", "record": 1, "figure": "record_001.png", "truth": {},
                       "after": "<script>x</script>\n- judgement->passed", "before": ""}]}
    page = main_job_html(m, tmp_path)
    assert "<pre>&lt;script&gt;x&lt;/script&gt;\n- judgement-&gt;passed</pre>" in page and "<script>" not in page
    assert "<pre>(empty)</pre>" in page and "<td>a &amp; &lt;b&gt;</td>" in page and "no readable pin: 2" in page
    assert page.count('src="data:image/png;base64,') == 3


def test_smoke_mode_is_the_same_steps_small_from_the_same_pretrained_model():
    cfg, job = main_job_config("runs/x")
    small, small_job = main_job_config("runs/x", smoke=True)
    assert small.smoke_mode and small.max_steps < cfg.max_steps and small.n_train < cfg.n_train
    assert (small.one_shot_first, small.inspect_shots, small.prompt_set) == (0, ("zero",), "short")    # same steps
    assert small.model == cfg.model and small.twin_look == cfg.twin_look == "rendered"
    assert small_job.balance_judgement == job.balance_judgement and small_job.warmup_steps < job.warmup_steps


@pytest.mark.parametrize("bad, message", [(dict(seed=-1), "seed must be a whole number >= 0"),
                                          (dict(seed=1.5), "seed must be"), (dict(threads=0), "threads must be"),
                                          (dict(threads=10**4), "this machine has")])
def test_a_seed_or_thread_count_that_makes_no_sense_is_an_error_before_any_work(tmp_path, bad, message):
    with pytest.raises(MainJobError, match=message):
        run_main_job(tmp_path / "run", smoke=True, **bad)
    assert list(tmp_path.iterdir()) == []
    assert cli.main(["main-job", "--smoke", "--out", str(tmp_path / "run"), "--threads", "0"]) == 2


@pytest.mark.slow
def test_a_second_run_replaces_the_first_whole_and_an_interrupted_one_changes_nothing(job, monkeypatch, capsys):
    out, _ = job
    (out / "left_from_before.txt").write_text("x")
    run_main_job(out, seed=1, smoke=True, threads=1)
    m = json.loads((out / "metrics.json").read_text())
    assert not (out / "left_from_before.txt").exists() and m["seed"] == 1 and m["threads"] == 1
    assert json.loads((out / "twin" / "summary.json").read_text())["config"]["look"] == "rendered"
    assert "of the rendered twin's DST images" in (out / "report.md").read_text()
    finished = (out / "metrics.json").read_text()

    def ctrl_c(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr("qeu_vlm.tools.main_job.fine_tune", ctrl_c)
    assert cli.main(["main-job", "--smoke", "--seed", "2", "--out", str(out)]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert (out / "metrics.json").read_text() == finished                  # the finished run is untouched
    partial = out.with_name(out.name + ".partial")
    assert partial.is_dir() and not (partial / "metrics.json").exists() and not (partial / "report.html").exists()


def test_a_run_folder_that_cannot_be_written_is_an_error_before_any_work(tmp_path, capsys):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    with pytest.raises(OutputFolderError, match="is a file, not a folder"):
        check_writable(a_file)
    with pytest.raises(OutputFolderError, match="is a file, so no folder can be made under it"):
        check_writable(a_file / "run")
    assert cli.main(["main-job", "--smoke", "--out", str(a_file / "run")]) == 2
    assert "is a file" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]      # nothing was started
