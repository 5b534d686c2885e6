"""The main job (``python -m qeu_vlm demo``) at its smoke size: its report page, reruns, Ctrl-C, bad run folders.

Whether the full-size job learns is a benchmark (``python -m benchmarks.main_job``), not a timed test."""
import json
import re

import pytest

from qeu_vlm import cli
from qeu_vlm.tools.main_job import run_demo
from qeu_vlm.files import OutputFolderError, check_writable
from qeu_vlm.tools.report import html_answer, html_table


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "run"
    return out, run_demo(out, seed=0, smoke=True)


@pytest.mark.slow
def test_the_main_job_writes_a_self_contained_report_page_beside_its_metrics(demo):
    out, m = demo
    assert sorted(p.name for p in out.parent.iterdir()) == ["run"]          # no .partial left behind
    page = (out / "report.html").read_text()
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["before"] == m["before"] and set(saved["targets"]) == {"format_valid", "judgement_balanced_accuracy"}
    # every figure is inside the page: no link or source to a file beside it
    sources = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    for what in ("before training", "after training", "classic baseline", "Learning curves", "What ran",
                 m["commit"], "vision warm-up step"):
        assert what in page, what
    assert 0 < len(m["examples"]) <= 6 and page.count("<pre>") == 2 * len(m["examples"])
    assert str(out) not in page and ".partial" not in page                # no machine path in what people read
    stages = m["stages_s"]
    assert {"vision warm-up", "fine-tuning", "inspect before training", "inspect after training"} <= set(stages)
    assert json.loads((out / "config.json").read_text())["run_dir"] == str(out)


def test_answers_are_shown_as_written_never_as_markup():
    assert html_answer("<script>x</script>\n- judgement->passed") == \
        "<pre>&lt;script&gt;x&lt;/script&gt;\n- judgement-&gt;passed</pre>"
    assert html_answer("") == "<pre>(empty)</pre>" and html_answer("\n\n") == "<pre>(2 newlines)</pre>"
    assert "<td>a &amp; &lt;b&gt;</td>" in html_table(["x"], [["a & <b>"]])


@pytest.mark.slow
def test_a_second_run_replaces_the_first_whole_and_an_interrupted_one_changes_nothing(demo, monkeypatch, capsys):
    out, _ = demo
    (out / "left_from_before.txt").write_text("x")
    run_demo(out, seed=1, smoke=True, look="rendered")
    m = json.loads((out / "metrics.json").read_text())
    assert not (out / "left_from_before.txt").exists() and m["seed"] == 1 and m["settings"]["twin_look"] == "rendered"
    assert json.loads((out / "twin" / "summary.json").read_text())["config"]["look"] == "rendered"
    assert "of the rendered synthetic twin's DST images" in (out / "report.md").read_text()
    finished = (out / "metrics.json").read_text()

    def ctrl_c(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr("qeu_vlm.tools.steps.train_step", ctrl_c)
    assert cli.main(["demo", "--smoke", "--seed", "2", "--out", str(out)]) == 130
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
    assert cli.main(["demo", "--smoke", "--out", str(a_file / "run")]) == 2
    assert "is a file" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]      # nothing was started
