import pytest

from qeu_vlm.colab import mount_drive, run_folder
from qeu_vlm.config import Config, RunFolderError
from qeu_vlm.data import DataError
from qeu_vlm.tools.steps import SPLITS, split_sources


def test_open_keeps_the_run_settings_across_notebooks(tmp_path, monkeypatch):
    monkeypatch.delenv("QEU_VLM_SMOKE", raising=False)
    first = Config.open(tmp_path, data="hub:me/CYLNimages_train_1015", model="qwen2.5-vl-7b")
    again = Config.open(tmp_path, model=None, first="01_load_data")    # None: keep what the run has
    assert again == first and again.model == "qwen2.5-vl-7b" and not again.smoke_mode


def test_smoke_never_sticks_to_a_run_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("QEU_VLM_SMOKE", raising=False)
    real = Config.open(tmp_path / "real", model="qwen2.5-vl-7b")
    monkeypatch.setenv("QEU_VLM_SMOKE", "1")
    with pytest.raises(RunFolderError, match="holds a real run .* this is a smoke run"):
        Config.open(tmp_path / "real")                              # smoke would overwrite the real recipe
    smoke = Config.open(tmp_path / "smoke", model="qwen2.5-vl-7b")
    assert smoke.smoke_mode and smoke.model == "tiny" and smoke.real_model == "qwen2.5-vl-7b"
    assert Config.open(tmp_path / "smoke", model="qwen2.5-vl-7b") == smoke    # 01 run again: the same run
    monkeypatch.delenv("QEU_VLM_SMOKE")
    with pytest.raises(RunFolderError, match="holds a smoke run, and this is a real run"):
        Config.open(tmp_path / "smoke")                             # no tiny model, no 4 steps in a real run
    assert Config.load(tmp_path / "real" / "config.json") == real


def test_a_contradicting_setting_or_a_missing_run_is_an_error_that_says_so(tmp_path, monkeypatch):
    monkeypatch.delenv("QEU_VLM_SMOKE", raising=False)
    with pytest.raises(RunFolderError, match="no run here yet .* run notebook 01_load_data first"):
        Config.open(tmp_path, first="01_load_data")
    assert not (tmp_path / "config.json").exists()                  # nothing started with default settings
    cfg = Config.open(tmp_path, model="qwen2.5-vl-7b")
    with pytest.raises(RunFolderError, match="model is 'qwen2.5-vl-7b' there, 'qwen3-vl-2b' here"):
        Config.open(tmp_path, model="qwen3-vl-2b")
    with pytest.raises(RunFolderError, match="no adapter, log_history.json yet; run notebook 03_finetune"):
        cfg.require("adapter", "log_history.json", made_by="03_finetune")


def test_the_run_folder_defaults_apart_for_smoke_and_to_drive_on_colab(monkeypatch):
    for k in [k for k in __import__("os").environ if k.startswith(("COLAB_", "QEU_VLM_"))]:
        monkeypatch.delenv(k)
    assert (run_folder(None), run_folder(None, smoke=True), run_folder("mine", smoke=True)) == (
        "runs/replay", "runs/smoke", "mine")
    monkeypatch.setenv("COLAB_RELEASE_TAG", "x")
    assert run_folder(None).startswith("/content/drive/MyDrive/") and run_folder(None, True) != run_folder(None)


def test_split_sources(tmp_path):
    hub = split_sources(Config(data="hub:o/CYLNimages_train_1015"), tmp_path)
    assert hub == {
        SPLITS[0]: ("hub:o/CYLNimages_train_1015", "train"),
        SPLITS[1]: ("hub:o/CYLNimages_test_1015", "train"),
    }
    with pytest.raises(DataError, match="test_data"):
        split_sources(Config(data="hub:o/mydata"), tmp_path)
    for s in SPLITS:
        (tmp_path / s).mkdir()
        (tmp_path / s / "metadata.csv").write_text("file_name\n")
    assert split_sources(Config(data=str(tmp_path)), tmp_path)[SPLITS[1]] == (str(tmp_path / SPLITS[1]), SPLITS[1])


def test_drive_paths_off_colab_are_named(monkeypatch):
    for k in [k for k in __import__("os").environ if k.startswith("COLAB_")]:
        monkeypatch.delenv(k)
    assert mount_drive("runs/x", None, "synthetic", "hub:o/n") is False
    with pytest.raises(RuntimeError, match="/content/drive/MyDrive/run1: a Google Drive path"):
        mount_drive("/content/drive/MyDrive/run1")
    with pytest.raises(RuntimeError, match="/content/drive/MyDrive/pools: a Google Drive path"):
        mount_drive("runs/x", "synthetic", "/content/drive/MyDrive/pools")   # any path in use, not only RUN_DIR
