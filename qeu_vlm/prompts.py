"""Instruction texts. ``original``: the experiments' own words; ``default``: the same task with the
address scheme stated plainly, as the authors said it should have been; ``short``: for tiny models on CPU."""
from __future__ import annotations

_DST_HINT = " You should understand that if you find a solid white circle, it is likely to be a defect."

_ORIGINAL_INSPECT = (
    "You are a visual inspector who judges whether a product is passed or defective. Both image2 and image3 "
    "show a group of pins (cylinders) on the product. These images are top view of the pins. The number and "
    "arrangement of pins in image2 and image3 are the same. Image2 is an image of passed product. You should "
    "compare all of pins on the product in image2 and image3 one by one. If you found a significant difference "
    "on the pins, it is defined as defect. After visual inspection, you should describe type of image, quantity "
    "of pins, defect mode, and address of defect.")
_ORIGINAL_STAR = (
    "You are a visual inspector who find defect on a product. Image1 shows a group of pins (cylinders) on the "
    "product. This image shows pins from above. There are alphanumeric characters located above and left of the "
    "product. These alphanumeric characters are used to generate address where the defect is located. Image1 "
    "has a red star as defect. You should specify a location of the red star. After your inspection, you should "
    "describe the image type, quantity of pins, and position of a red star.")
_ADDRESSING = (
    " The pins stand in 3 rows and 9 columns. The digits 1 to 9 across the top give the X address (column, "
    "left to right); the letters U, C, D down the left give the Y address (row, top to bottom). Write an "
    "address as 'X:column, Y:row', for example 'X:9, Y:C'.")
_FORMAT = (
    " Answer in exactly five lines: image type, quantity of pins, your judgement (passed or defective), "
    "defect mode (X-plus, X-minus, Y-plus, Y-minus or passed) and defect position (an address, or passed).")

_SHORT = ("Image2 shows a passed product, image3 the product to inspect. Compare their pins. Answer in five lines: "
          "image type, quantity of pins, judgement, defect mode, defect position (X:column 1-9, Y:row U, C or D).")

PROMPT_SETS = {
    "original": {
        "CYLN_DST": _ORIGINAL_INSPECT + _DST_HINT,
        "CYLN_RAW": _ORIGINAL_INSPECT,
        "STAR": _ORIGINAL_STAR,
    },
    "default": {
        "CYLN_DST": _ORIGINAL_INSPECT + _ADDRESSING + _DST_HINT + _FORMAT,
        "CYLN_RAW": _ORIGINAL_INSPECT + _ADDRESSING + _FORMAT,
        "STAR": _ORIGINAL_STAR + _ADDRESSING,
    },
    # For small models trained from scratch on CPU (the learn profile): the same task in a fifth of the tokens.
    "short": {
        "CYLN_DST": _SHORT,
        "CYLN_RAW": _SHORT,
        "STAR": "Image1 has a red star on one pin. Give the image type, quantity of pins and the star's position.",
    },
}


def prompts(name: str = "default") -> dict:
    if name not in PROMPT_SETS:
        raise KeyError(f"unknown prompt set {name!r} (known: {', '.join(PROMPT_SETS)})")
    return PROMPT_SETS[name]
