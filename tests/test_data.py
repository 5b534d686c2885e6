import csv
import shutil

import datasets
import pytest

from qeu_vlm.data import DataError, load_pools, load_records, validate


def _ds(twin, n=6):
    recs = twin.splits["CYLNimages_train_1015"][:n]
    return datasets.Dataset.from_list(
        [r | {"image": {"bytes": r["image"], "path": None}} for r in recs],
        features=datasets.Features(
            {k: datasets.Value("string") for k in ("dir", "position", "type", "bbox_str")} | {"image": datasets.Image()}
        ),
    )


def test_sources_load(twin_dir):
    ds, rep = load_records(str(twin_dir / "dataset"), split="CYLNimages_test_1015")
    assert rep.ok and ds.num_rows == 12
    ds, rep = load_records(str(twin_dir / "drive" / "CYLNimages_train_1015"))
    assert rep.ok and ds.num_rows == 40


@pytest.mark.parametrize("field,value,needle", [
    ("type", "CYLN_XXX", "unknown image type"),
    ("bbox_str", "X-plus<loc_1>", "malformed bbox_str"),
    ("position", "X:0, Y:C", "not an address"),
    ("image", {"bytes": b"not a png", "path": None}, "unreadable image"),
])
def test_bad_values_name_row_and_field(twin, field, value, needle):
    ds = _ds(twin).to_list()
    ds[3][field] = value
    bad = datasets.Dataset.from_list(ds, features=_ds(twin).features)
    with pytest.raises(DataError, match=rf"row 3, field '{field}'.*{needle}"):
        validate(bad)


def test_disagreement_named(twin):
    rows = _ds(twin).to_list()
    i = next(i for i, r in enumerate(rows) if r["dir"] != "OK")
    rows[i]["dir"] = "OK"
    with pytest.raises(DataError, match=rf"row {i}.*disagree"):
        validate(datasets.Dataset.from_list(rows, features=_ds(twin).features))


def test_columns(twin):
    with pytest.raises(DataError, match="field 'bbox_str': missing column"):
        validate(_ds(twin).remove_columns("bbox_str"))
    with pytest.raises(DataError, match="field 'extra': unknown column"):
        validate(_ds(twin).add_column("extra", ["x"] * 6))


def test_collect_mode_reports_everything(twin):
    rows = _ds(twin).to_list()
    rows[1]["type"] = "nope"
    rows[4]["position"] = "X:middle, Y:right"
    rep = validate(datasets.Dataset.from_list(rows, features=_ds(twin).features), collect=True)
    assert [(p.row, p.field) for p in rep.problems] == [(1, "type"), (4, "position")]
    assert rep.rows == 6 and not rep.ok


def test_pools(twin_dir, tmp_path):
    pools = load_pools(twin_dir / "drive")
    assert len(pools.passed["CYLN_DST"]) == 4 and len(pools.stars["CYLN_RAW"]) == 4
    bad = tmp_path / "drive"
    shutil.copytree(twin_dir / "drive" / "passed_image", bad / "passed_image")
    for f in (bad / "passed_image" / "RAW").iterdir():
        f.unlink()
    with pytest.raises(DataError, match="RAW: empty pool"):
        load_pools(bad)
    shutil.rmtree(bad)
    shutil.copytree(twin_dir / "drive" / "passed_image", bad / "passed_image")
    table = bad / "passed_image" / "star_addresses.csv"
    rows = list(csv.reader(open(table)))
    rows[2][0] = "ghost.png"
    csv.writer(open(table, "w", newline="")).writerows(rows)
    with pytest.raises(DataError, match="row 1, field 'file_name': 'ghost.png'"):
        load_pools(bad)


def test_hub_source_uses_env_token(monkeypatch, twin):
    seen = {}

    def fake_load_dataset(repo, split, token):
        seen.update(repo=repo, split=split, token=token)
        return _ds(twin)

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    monkeypatch.setenv("HF_TOKEN", "hf_secret_value")
    ds, rep = load_records("hub:YxBxRyXJx/CYLNimages_test_1015")
    assert seen == {"repo": "YxBxRyXJx/CYLNimages_test_1015", "split": "train", "token": "hf_secret_value"}
    assert rep.ok and "hf_secret_value" not in str(rep)
