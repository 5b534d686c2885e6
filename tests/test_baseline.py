"""The classic inspector finds the blob on the twin, answers in the five-line format, and round-trips its fit."""
import numpy as np
import pytest

from qeu_vlm.answer import answer_for, parse_answer
from qeu_vlm.baseline import Baseline
from qeu_vlm.data import Pools, decode
from qeu_vlm.metrics import score
from qeu_vlm.synth import SynthConfig

pytestmark = pytest.mark.slow          # fits the baseline on a twin (about a minute)


@pytest.fixture(scope="module")
def fitted():
    twin = SynthConfig(n_train=360, n_test=160, seed=5, n_average=12).generate(progress=False)
    pools = Pools(passed={f"CYLN_{k}": [decode(b) for _, b in twin.pools[k]] for k in ("DST", "RAW")}, stars={})
    train, test = twin.splits.values()
    return Baseline().fit(train, pools, progress=False), test, pools


def test_baseline_finds_the_defect(fitted):
    bl, test, pools = fitted
    rng = np.random.default_rng(0)
    texts = [bl.answer(r, pools.passed[r["type"]][rng.integers(len(pools.passed[r["type"]]))]) for r in test]
    m = score(texts, [answer_for(r) for r in test])
    dst, raw = m["by_type"]["CYLN_DST"], m["by_type"]["CYLN_RAW"]
    assert m["all"]["format_valid"] == 1.0
    assert dst["judgement_accuracy"] >= 0.95 and dst["position_exact"] >= 0.95 and dst["mode_accuracy"] >= 0.85
    assert raw["judgement_accuracy"] >= 0.9 and raw["position_exact"] >= 0.9


def test_fit_learns_from_the_data(fitted, tmp_path):
    bl, _, _ = fitted
    assert bl.threshold != Baseline().threshold and 0.02 < bl.lean["CYLN_DST"] < 0.09   # the twin leans 5%
    bl.save(tmp_path / "b.json")
    assert Baseline.load(tmp_path / "b.json") == bl


def test_a_passed_raw_image_against_itself_is_passed(fitted):
    bl, test, _ = fitted
    raw = next(r for r in test if r["type"] == "CYLN_RAW")
    answer = parse_answer(bl.answer(raw, decode(raw["image"])))
    assert answer.judgement == "passed" and answer.position == "passed"


def test_a_thin_outline_does_not_stand_out_but_a_solid_blob_does():
    """DST draws a passed pin as a thin ring and a bent one as a solid blob; only the blob may count as a defect."""
    from qeu_vlm.domain import Address
    from qeu_vlm.domain import pin_centre

    cx, cy = pin_centre(Address(5, "C"))
    yy, xx = np.mgrid[:280, :410]
    r = np.hypot(xx - cx, yy - cy)
    stand_out = {name: Baseline.pin_evidence(np.where(inside, 255.0, 0.0))[0][1, 4]
                 for name, inside in (("ring", np.abs(r - 9) < 1), ("blob", r < 9))}
    assert stand_out["blob"] > 100 and stand_out["ring"] < 0.1 * stand_out["blob"]
