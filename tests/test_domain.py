import pytest

from qeu_vlm.domain import (ALL_ADDRESSES, Address, DomainError, check_record, format_bbox, format_dir,
                            parse_bbox, parse_dir)


def test_addresses_cover_27_pins():
    assert len(set(ALL_ADDRESSES)) == 27
    assert Address.parse("X:9, Y:C") == Address(9, "C")


@pytest.mark.parametrize("bad", ["X:0, Y:C", "X:3, Y:N", "X:4, Y:F", "X:middle, Y:right", "9C", "", None])
def test_bad_addresses_rejected(bad):
    with pytest.raises(DomainError):
        Address.parse(bad)


@pytest.mark.parametrize(
    "code,addr,mode",
    [
        ("53X10", Address(5, "D"), "X-plus"),
        ("11Xm10", Address(1, "U"), "X-minus"),
        ("23Ym10", Address(2, "D"), "Y-minus"),
        ("OK", None, "passed"),
    ],
)
def test_dir_codes_round_trip(code, addr, mode):
    assert parse_dir(code) == (addr, mode)
    assert format_dir(addr, mode) == code


@pytest.mark.parametrize("bad", ["54X10", "03X10", "53Z10", "53X20", "ok", ""])
def test_bad_dir_codes(bad):
    with pytest.raises(DomainError):
        parse_dir(bad)


def test_bbox():
    assert parse_bbox("passed<loc_147><loc_103><loc_328><loc_228>") == ("passed", (147, 103, 328, 228))
    assert format_bbox("X-plus", (1, 2, 3, 4)) == "X-plus<loc_1><loc_2><loc_3><loc_4>"
    for bad in [
        "Y-minus<loc_1><loc_2><loc_3>",
        "Z-plus<loc_1><loc_2><loc_3><loc_4>",
        "X-plus<loc_5><loc_2><loc_3><loc_4>",
    ]:
        with pytest.raises(DomainError):
            parse_bbox(bad)


def test_record_disagreement_named():
    rec = {"dir": "53X10", "position": "X:5, Y:U", "type": "CYLN_RAW", "bbox_str": "X-plus<loc_1><loc_2><loc_3><loc_4>"}
    with pytest.raises(DomainError, match="disagree"):
        check_record(rec)
    with pytest.raises(DomainError, match="^type"):
        check_record(rec | {"type": "CYLN_XYZ"})
