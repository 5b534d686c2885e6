import io
import time

import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import uniform_filter

from qeu_vlm.data import load_pools
from qeu_vlm.domain import ALL_ADDRESSES, DEFECT_MODES, IMAGE_SIZE, Address, parse_bbox, parse_dir
from qeu_vlm.twin.render import (Pose, RenderConfig, RenderError, defect_box, fit_bend, pin_axis, render_scene,
                            similarity_residuals, twin_residuals)
from qeu_vlm.twin.synth import SynthConfig, SynthError, write_twin

W, H = IMAGE_SIZE


def _rendered(**kw):
    return SynthConfig(**({"n_train": 12, "n_test": 4, "seed": 3, "n_pool": 3, "look": "rendered"} | kw))


@pytest.fixture(scope="module")
def rtwin():
    return _rendered(n_train=40, n_test=8).generate(progress=False)


def test_the_rendered_look_is_the_default():
    assert SynthConfig().look == "rendered"


def test_bent_tip_in_its_box_and_box_inside_image():
    rng = np.random.default_rng(0)
    cfg = RenderConfig()
    for k, addr in enumerate(ALL_ADDRESSES):
        for mode in DEFECT_MODES:
            pose = Pose.random(rng, cfg)
            rend = render_scene(pose, addr, mode, fit_bend(pose, addr, mode, np.deg2rad(rng.uniform(*cfg.bend_deg))))
            x1, y1, x2, y2 = defect_box(rend, addr)
            tx, ty = rend.tips[k]
            assert x1 <= tx <= x2 and y1 <= ty <= y2, (addr, mode)
            assert 60 <= x1 < x2 <= W - 1 and 60 <= y1 < y2 <= H - 1
            clipped = x1 == 60 or y1 == 60 or x2 == W - 1 or y2 == H - 1
            assert 33 <= x2 - x1 <= 49 and 35 <= y2 - y1 <= 55 or clipped, (addr, mode)
            straight = render_scene(pose).tips[k]
            vx, vy = {"X-plus": (1, 0), "X-minus": (-1, 0), "Y-plus": (0, -1), "Y-minus": (0, 1)}[mode]
            assert (tx - straight[0]) * vx + (ty - straight[1]) * vy > 8, "the tip moves the way the pin bends"


def test_bent_pin_looks_longer():
    pose, addr = Pose(), Address.from_code("5C")
    k = ALL_ADDRESSES.index(addr)
    straight = (render_scene(pose).ids == k).sum()
    for mode in DEFECT_MODES:
        assert (render_scene(pose, addr, mode, np.deg2rad(28)).ids == k).sum() > 1.3 * straight


def test_records_labels_and_jpeg(rtwin):
    for recs in rtwin.splits.values():
        for r in recs:
            assert r["image"][:2] == b"\xff\xd8"
            img = Image.open(io.BytesIO(r["image"]))
            assert img.size == (W, H)
            addr, mode = parse_dir(r["dir"])
            bmode, (x1, y1, x2, y2) = parse_bbox(r["bbox_str"])
            assert bmode == mode and 0 <= x1 < x2 <= W - 1 and 0 <= y1 < y2 <= H - 1


def test_dst_defect_is_the_brightest_shape():
    t = _rendered(n_train=60, n_test=1, dst_fraction=1.0, passed_fraction=0.0, seed=5).generate(progress=False)
    hits = []
    for r in t.splits["CYLNimages_train_1015"]:
        g = np.asarray(Image.open(io.BytesIO(r["image"])).convert("L"), float)
        g[:60], g[:, :60] = 0, 0
        y, x = np.unravel_index(np.argmax(uniform_filter(g, 9)), g.shape)
        _, (x1, y1, x2, y2) = parse_bbox(r["bbox_str"])
        hits.append(x1 <= x <= x2 and y1 <= y <= y2)
    assert np.mean(hits) >= 0.9, np.mean(hits)


def test_rendered_deterministic():
    a, b = _rendered().generate(progress=False), _rendered().generate(progress=False)
    assert a.splits == b.splits and a.pools == b.pools
    assert a.splits != _rendered(seed=4).generate(progress=False).splits


def test_pools_jpeg_and_star_shares_name_with_passed(tmp_path):
    twin = _rendered(n_train=4, n_test=2).generate(progress=False)
    for kind in ("RAW", "DST"):
        passed = [f for f, _ in twin.pools[kind]]
        assert passed == [f for f, _ in twin.pools[f"{kind}_STAR"]] and all(f.endswith(".jpg") for f in passed)
    out = write_twin(twin, tmp_path / "tw")
    pools = load_pools(out / "drive")
    assert len(pools.stars["CYLN_RAW"]) == 3 and len(pools.stars["CYLN_DST"]) == 3
    assert sorted(p.name for p in (out / "drive" / "CYLNimages_train_1015" / "images").iterdir())[0] == "00000.jpg"


def test_defects_on_every_row_including_c():
    t = _rendered(n_train=60, n_test=1, passed_fraction=0.0, defect_pins=("4C", "7C", "1U")).generate(progress=False)
    rows = {parse_dir(r["dir"])[0].row for r in t.splits["CYLNimages_train_1015"]}
    assert rows == {"C", "U"}


@pytest.mark.parametrize("kw, field", [
    ({"look": "photo"}, "look"), ({"passed_fraction": 1.5}, "passed_fraction"),
    ({"dst_fraction": -0.1}, "dst_fraction"),
    ({"n_train": -1}, "n_train"), ({"n_pool": 0}, "n_pool"), ({"defect_pins": ("0X",)}, "defect_pins"),
    ({"look": "rendered", "render": {"bend_deg": (30, 10)}}, "bend_deg"),
    ({"look": "rendered", "render": {"pose_jitter": -1}}, "pose_jitter"),
    ({"look": "rendered", "render": {"roll_deg": 30}}, "roll_deg"),
    ({"look": "rendered", "render": {"bright_fraction": 2}}, "bright_fraction"),
    ({"look": "rendered", "render": {"focal": 2}}, "focal"),
    ({"look": "schematic", "render": {"bright_fraction": 0.5}}, "render"),   # render options need the rendered look
])
def test_bad_options_name_the_field(kw, field):
    with pytest.raises(SynthError, match=field):
        SynthConfig(**kw)


def test_render_config_errors_are_value_errors():
    with pytest.raises(RenderError, match="jpeg_quality"):
        RenderConfig(jpeg_quality=5)


def test_nuisance_is_not_rigid():
    """A similarity fit of the pin tops leaves several pixels, as on the real images; a rigid move leaves none."""
    res = twin_residuals(n=40, seed=1)
    print(f"twin residuals after shift+rotation+scale: mean {res.mean():.2f} px, per-image max {res.max(1).mean():.2f}")
    assert res.max(1).mean() > 1.5
    tops = np.stack([pin_axis(a)[1][:2] for a in ALL_ADDRESSES])
    c, s = np.cos(0.02), np.sin(0.02)
    moved = 1.03 * tops @ np.array([[c, s], [-s, c]]) + [3, -2]
    assert similarity_residuals(tops, moved).max() < 1e-6


def test_render_speed_is_modest():
    t = time.perf_counter()
    _rendered(n_train=30, n_test=0 + 1, n_pool=1).generate(progress=False)
    dt = time.perf_counter() - t
    print(f"rendered twin: {31 / dt:.0f} records/s ({dt:.2f} s for 31 records + pools)")


def test_cli_names_the_bad_field(tmp_path, capsys):
    from qeu_vlm.tools.cli import main

    assert main(["synth", "--out", str(tmp_path / "t"), "--look", "rendered", "--render", '{"roll_deg": 30}']) == 2
    assert "roll_deg" in capsys.readouterr().err and not (tmp_path / "t").exists()


def test_dst_is_smooth_not_blocky():
    """No 5-px steps: neighbouring pixels inside a 5-px block differ about as much as across block borders."""
    t = _rendered(n_train=6, n_test=1, dst_fraction=1.0).generate(progress=False)
    g = np.asarray(Image.open(io.BytesIO(t.splits["CYLNimages_train_1015"][0]["image"])).convert("L"), float)
    steps = np.abs(np.diff(g[60:, 60:], axis=1)).mean(0)
    border, inside = steps[4::5].mean(), np.delete(steps, np.s_[4::5]).mean()
    assert border < 1.5 * inside, (border, inside)


def test_passed_dst_sometimes_bright():
    t = _rendered(n_train=40, n_test=1, dst_fraction=1.0, passed_fraction=1.0,
                  render={"bright_fraction": 0.5}).generate(progress=False)
    bright = [(np.asarray(Image.open(io.BytesIO(r["image"])).convert("L"))[60:, 60:] > 200).sum()
              for r in t.splits["CYLNimages_train_1015"]]
    assert max(bright) > 5 * max(np.median(bright), 1), bright


def test_twin_benchmark_prints_speed(capsys):
    from benchmarks import twin

    twin.main(["--n", "16"])
    assert "rendered twin: 16 records generated and written in" in capsys.readouterr().out
