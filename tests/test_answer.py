import pytest
from hypothesis import given, strategies as st

from qeu_vlm.answer import FIELDS, Answer, format_answer, parse_answer, read_position
from qeu_vlm.domain import ALL_ADDRESSES, DEFECT_MODES


def _valid_answers():
    defective = st.builds(
        lambda t, m, a: Answer(t, 27, "defective", m, a.canonical),
        st.sampled_from(["CYLN_RAW", "CYLN_DST"]),
        st.sampled_from(DEFECT_MODES),
        st.sampled_from(ALL_ADDRESSES),
    )
    passed = st.builds(lambda t: Answer(t, 27, "passed", "passed", "passed"), st.sampled_from(["CYLN_RAW", "CYLN_DST"]))
    return defective | passed


@given(_valid_answers())
def test_round_trip(a):
    assert parse_answer(format_answer(a)) == a


@given(st.text())
def test_never_raises(text):
    a = parse_answer(text)
    assert a.valid == (not a.problems)
    unread = [f for f in FIELDS if getattr(a, f) is None]
    assert all(any(p.startswith(("missing", "unreadable")) for p in a.problems) for _ in unread)   # marked, not lost


def test_reads_what_models_write():
    text = ("Sure! Here is my inspection:\n• Image Type -> cyln_dst\n* Number of pins: 27 pins\n"
            "1. Your judgement->Defective\n2) defect mode-> y-minus\n- defect position -> location 2D\nThanks.")
    a = parse_answer(text)
    assert a == Answer("CYLN_DST", 27, "defective", "Y-minus", "X:2, Y:D")
    assert a.valid


def test_full_width():
    a = parse_answer("－ image type－＞CYLN_RAW\n- quantity of pins->２７ pcs\n- your judgement->passed\n"
                     "- defect mode->passed\n- defect position->passed")
    assert a.valid and a.pin_count == 27


@pytest.mark.parametrize("text,expected", [("X:9, Y:C", "X:9, Y:C"), ("X:9,Y:C", "X:9, Y:C"), ("9C", "X:9, Y:C"),
                                           ("C9", "X:9, Y:C"), ("location 9C", "X:9, Y:C"), ("(9, C)", "X:9, Y:C"),
                                           ("x:1 , y:u", "X:1, Y:U"), ("passed", "passed")])
def test_position_forms(text, expected):
    assert read_position(text) == expected


@pytest.mark.parametrize("bad", ["X:0, Y:C", "X:3, Y:N", "X:4, Y:F", "X:middle, Y:right", "10C", "somewhere"])
def test_impossible_addresses_invalid(bad):
    a = parse_answer(format_answer(Answer("CYLN_DST", 27, "defective", "X-plus", "X:1, Y:U")).replace("X:1, Y:U", bad))
    assert not a.valid and a.position is None
    assert any("defect position" in p for p in a.problems)


def test_star_answer_position():
    a = parse_answer("- image type->CYLN_RAW\n- quantity of pins->27 pins\n- position of star->X:1, Y:C")
    assert a.position == "X:1, Y:C" and not a.valid


def test_missing_and_contradictory_marked():
    a = parse_answer("- image type->CYLN_RAW\n- your judgement->passed\n- defect mode->X-plus")
    assert not a.valid
    assert any("missing" in p for p in a.problems) and any("contradicts" in p for p in a.problems)
    assert not parse_answer(None).valid
