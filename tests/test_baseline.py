"""The classic inspector finds the bent pin on both looks of the twin, answers in the five-line format, and
round-trips its fit."""
import numpy as np
import pytest

from qeu_vlm.answer import answer_for, parse_answer
from qeu_vlm.tools.baseline import Baseline, fit_grid
from qeu_vlm.data import Pools, decode
from qeu_vlm.metrics import score
from qeu_vlm.twin.synth import SynthConfig

pytestmark = pytest.mark.slow          # fits the baseline on two small twins (well under a minute on a free core)


def _fitted(**cfg):
    twin = SynthConfig(**cfg).generate(progress=False)
    pools = Pools(passed={f"CYLN_{k}": [decode(b) for _, b in twin.pools[k]] for k in ("DST", "RAW")}, stars={})
    train, test = twin.splits.values()
    return Baseline().fit(train, pools, progress=False), test, pools


def _scores(bl, test, pools):
    rng = np.random.default_rng(0)
    texts = [bl.answer(r, pools.passed[r["type"]][rng.integers(len(pools.passed[r["type"]]))]) for r in test]
    return score(texts, [answer_for(r) for r in test])


@pytest.fixture(scope="module")
def fitted():
    return _fitted(n_train=240, n_test=120, seed=5, n_average=12)


@pytest.fixture(scope="module")
def rendered():
    return _fitted(n_train=160, n_test=80, seed=5, look="rendered")


def test_baseline_finds_the_defect(fitted):
    m = _scores(*fitted)
    dst, raw = m["by_type"]["CYLN_DST"], m["by_type"]["CYLN_RAW"]
    assert m["all"]["format_valid"] == 1.0
    assert dst["judgement_accuracy"] >= 0.95 and dst["position_exact"] >= 0.95 and dst["mode_accuracy"] >= 0.85
    assert raw["judgement_accuracy"] >= 0.9 and raw["position_exact"] >= 0.9


def test_baseline_finds_the_defect_on_the_rendered_look(rendered):
    """The rendered twin's perspective camera moves edge pins by up to 20 px and a bent pin's DST shape reaches toward
    its neighbour: the fitted grid and the neighbour comparison must still put the address on the right pin."""
    m = _scores(*rendered)
    dst, raw = m["by_type"]["CYLN_DST"], m["by_type"]["CYLN_RAW"]
    assert m["all"]["format_valid"] == 1.0
    assert dst["judgement_accuracy"] >= 0.9 and dst["position_exact"] >= 0.9 and dst["mode_accuracy"] >= 0.8
    assert raw["judgement_accuracy"] >= 0.85 and raw["position_exact"] >= 0.85


def test_fit_learns_from_the_data(fitted, tmp_path):
    bl, _, _ = fitted
    assert bl.threshold != Baseline().threshold and bl.pin_mean != Baseline().pin_mean
    bl.save(tmp_path / "b.json")
    assert Baseline.load(tmp_path / "b.json") == bl


def test_a_passed_raw_image_against_itself_is_passed(fitted):
    bl, test, _ = fitted
    raw = next(r for r in test if r["type"] == "CYLN_RAW" and r["position"] == "passed")
    answer = parse_answer(bl.answer(raw, decode(raw["image"])))
    assert answer.judgement == "passed" and answer.position == "passed"


def test_the_grid_fit_follows_a_stretched_pin_field():
    """A pin field stretched about its middle (as a tilted camera does) is found where it is, not on the nominal
    grid."""
    from qeu_vlm.tools.baseline import NOMINAL

    yy, xx = np.mgrid[:280, :410]
    centre = NOMINAL[13]
    tops = centre + (NOMINAL - centre) * [1.08, 1.0]          # 8% wider: the end columns move by ~12 px
    img = np.zeros((280, 410))
    for x, y in tops:
        img[np.hypot(xx - x, yy - y) < 9] = 200.0
    assert np.abs(fit_grid(img) - tops).max() < 2.0 < np.abs(NOMINAL - tops).max()


def test_a_solid_blob_stands_out_more_than_a_thin_outline():
    """DST draws a passed pin as a thin ring and a bent one as a solid blob; the blob must count far more."""
    from qeu_vlm.domain import Address, pin_centre

    cx, cy = pin_centre(Address(5, "C"))
    yy, xx = np.mgrid[:280, :410]
    r = np.hypot(xx - cx, yy - cy)
    anomaly = {name: Baseline.pin_evidence(np.where(inside, 255.0, 0.0))[0]
               for name, inside in (("ring", np.abs(r - 9) < 1), ("blob", r < 9))}
    assert np.unravel_index(anomaly["blob"].argmax(), (3, 9)) == (1, 4)
    assert anomaly["blob"][1, 4] > 50 and anomaly["ring"][1, 4] < 0.5 * anomaly["blob"][1, 4]
