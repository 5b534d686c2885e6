import pytest

from qeu_vlm.colab import mount_drive
from qeu_vlm.config import Config
from qeu_vlm.data import DataError
from qeu_vlm.steps import SPLITS, split_sources


def test_open_keeps_the_run_settings_across_notebooks(tmp_path, monkeypatch):
    monkeypatch.delenv("QEU_VLM_SMOKE", raising=False)
    first = Config.open(tmp_path, data="hub:me/CYLNimages_train_1015", model="qwen2.5-vl-7b")
    again = Config.open(tmp_path, model=None)               # None: keep what the run has
    assert again == first and again.model == "qwen2.5-vl-7b" and not again.smoke_mode
    monkeypatch.setenv("QEU_VLM_SMOKE", "1")
    smoke = Config.open(tmp_path)
    assert smoke.smoke_mode and smoke.model == "tiny" and Config.load(tmp_path / "config.json") == smoke


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
    assert mount_drive("runs/x", None) is False
    with pytest.raises(RuntimeError, match="/content/drive/MyDrive/run1: a Google Drive path"):
        mount_drive("/content/drive/MyDrive/run1")
