import json

import pytest

from qeu_vlm import Answer, format_answer, score
from qeu_vlm.metrics import score_jsonl

T1 = Answer("CYLN_DST", 27, "defective", "X-plus", "X:3, Y:C")
T2 = Answer("CYLN_RAW", 27, "passed", "passed", "passed")
T3 = Answer("CYLN_RAW", 27, "defective", "Y-minus", "X:9, Y:U")


def test_metrics_and_breakdowns():
    preds = [format_answer(Answer("CYLN_DST", 27, "defective", "X-plus", "X:4, Y:C")),
             format_answer(Answer("CYLN_RAW", 27, "defective", "X-plus", "X:1, Y:U")),
             "garbage"]
    m = score(preds, [T1, T2, T3], shots=["zero", "one", "one"])
    a = m["all"]
    assert a["n"] == 3 and a["judgement_accuracy"] == pytest.approx(1 / 3)
    assert a["overkill"] == 1.0 and a["miss"] == 0.5
    assert a["position_exact"] == 0 and a["column_accuracy"] == 0 and a["row_accuracy"] == 0.5
    assert a["within_one_pin"] == 0.5 and a["format_valid"] == pytest.approx(2 / 3)
    assert a["mode_confusion"]["Y-minus"]["unreadable"] == 1
    assert m["by_type"]["CYLN_RAW"]["n"] == 2 and m["by_shot"]["one"]["n"] == 2


def test_unparseable_never_dropped():
    m = score(["", "nonsense"], [T1, T3])
    assert m["all"]["n"] == 2 and m["all"]["judgement_accuracy"] == 0 and m["all"]["exact_match"] == 0
    with pytest.raises(ValueError, match="every record"):
        score(["x"], [T1, T2])


def test_score_jsonl(tmp_path):
    p = tmp_path / "p.jsonl"
    p.write_text("\n".join(json.dumps({"text": format_answer(t), "truth": format_answer(t)}) for t in (T1, T2)))
    assert score_jsonl(p)["all"]["exact_match"] == 1.0
    p.write_text('{"text": "x"}\n')
    with pytest.raises(ValueError, match="line 1"):
        score_jsonl(p)
