"""The rendered twin beside the real reference figures: a side-by-side sheet and the pin-top nuisance, measured alike.

The real images are cut out of the blog figures in ``../shared/reference/`` (never copied into the project) and
rescaled to the dataset's 410 x 280, so real and twin are shown at the same scale with the same crops.

    python -m qeu_vlm.twin.figure --compare OUT.png [--nuisance] [--reference DIR]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..domain import ALL_ADDRESSES, IMAGE_SIZE, LEFT, TOP, Address, parse_dir
from .render import (CX0, CY0, PIN_R, Pose, RenderConfig, defect_box, draw_star, dst_from, fit_bend, nominal_tops,
                     render_scene, similarity_residuals)

W, H = IMAGE_SIZE
DEFAULT_REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference"
# (key, file, panel in the file's pixels, type, dir, real bbox or None): what each cut-out is, from the figures' text.
REAL = (
    ("raw_2D", "twin_vs_real/real_vs_twin_raw_dst.png", (0, 424, 615, 818), "RAW", "23Ym10", None),
    ("dst_2D", "twin_vs_real/real_vs_twin_raw_dst.png", (0, 0, 615, 394), "DST", "23Ym10", None),
    ("raw_star_1C", "one_shot_raw_example.jpg", (54, 133, 428, 388), "RAW", "star 1C", None),
    ("raw_passed", "one_shot_raw_example.jpg", (501, 133, 875, 388), "RAW", "OK", None),
    ("raw_2D_no1", "one_shot_raw_example.jpg", (54, 503, 428, 758), "RAW", "23Ym10", None),
    ("dst_star", "one_shot_star_images.jpg", (21, 150, 194, 268), "DST", "star 1U", None),
    ("dst_9U", "dataset_dst_raw_bboxes.jpg", (60, 299, 283, 452), "DST", "91Y10", (353, 97, 401, 147)),
    ("dst_7D", "dataset_dst_raw_bboxes.jpg", (1122, 299, 1345, 452), "DST", "73X10", (291, 191, 336, 235)),
    ("raw_8U", "dataset_dst_raw_bboxes.jpg", (57, 745, 281, 898), "RAW", "81Ym10", (326, 111, 363, 158)),
    ("raw_4C", "dataset_dst_raw_bboxes.jpg", (1127, 745, 1352, 898), "RAW", "42X10", (183, 151, 221, 186)),
)


def load_real(root=DEFAULT_REFERENCE) -> dict:
    """key -> (410 x 280 RGB image, type, dir, bbox or None)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: reference folder not found (pass --reference DIR)")
    out = {}
    for key, fn, box, typ, code, bbox in REAL:
        with Image.open(root / fn) as im:
            out[key] = (im.convert("RGB").crop(box).resize((W, H), Image.LANCZOS), typ, code, bbox)
    return out


def pin_tops(img: Image.Image) -> np.ndarray:
    """Where each pin's top cap is in a RAW image, found the same way in real and twin images: (27, 2) pixels.

    A pin shows as a pale cyan blob (body + cap); the cap is the blob's outer end (the top leans away from the
    camera axis), so it sits one radius in from the end farther from the image centre. NaN where no blob is found.
    """
    from scipy import ndimage

    a = np.asarray(img.convert("RGB"), np.float32)
    r, g, b = a[..., 0], a[..., 1], a[..., 2]
    mask = (g > 140) & (b > 140) & (g - r > 12)
    mask[:TOP], mask[:, :LEFT] = False, False
    mask = ndimage.binary_opening(mask, iterations=1)
    lab, _ = ndimage.label(mask)
    out = np.full((len(ALL_ADDRESSES), 2), np.nan)
    for k, (x, y) in enumerate(nominal_tops()):
        win = lab[int(y) - 12:int(y) + 13, int(x) - 12:int(x) + 13]
        ids, counts = np.unique(win[win > 0], return_counts=True)
        if not len(ids):
            continue
        ys, xs = np.nonzero(lab == ids[np.argmax(counts)])
        pts = np.stack([xs + 0.5, ys + 0.5], 1)
        if len(pts) > 2500:                        # merged with neighbours: not a single pin
            continue
        m = pts.mean(0)
        v = np.linalg.eigh(np.cov((pts - m).T))[1][:, -1]
        proj = (pts - m) @ v
        if proj.max() - proj.min() < 2 * PIN_R + 3:
            out[k] = m
            continue
        end = proj.max() if (m + proj.max() * v - (CX0, CY0)) @ v > (m + proj.min() * v - (CX0, CY0)) @ -v \
            else proj.min()
        out[k] = m + (end - np.sign(end) * PIN_R) * v
    return out


def affine_residuals(nominal: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Per-point residual (px) after the best affine fit: what is left once anisotropic scale and shear are allowed."""
    a = np.c_[nominal, np.ones(len(nominal))]
    x = np.linalg.lstsq(a, observed, rcond=None)[0]
    return np.linalg.norm(a @ x - observed, axis=1)


def _kept_tops(img, skip=()):
    """Detected tops and their nominal places, without missing, skipped and grossly misdetected pins."""
    tops = pin_tops(img)
    ok = ~np.isnan(tops[:, 0]) & ~np.isin(np.arange(len(ALL_ADDRESSES)), [ALL_ADDRESSES.index(a) for a in skip])
    res = similarity_residuals(nominal_tops()[ok], tops[ok])
    keep = res <= max(3 * np.median(res), 8.0)
    return nominal_tops()[ok][keep], tops[ok][keep]


def _pins_named(code: str) -> tuple:
    """The pin a real cut-out's label names (its bent or starred pin), to leave out of the nuisance fit."""
    if code == "OK":
        return ()
    if code.startswith("star"):
        return (Address.from_code(code.split()[1]),)
    return (parse_dir(code)[0],)


def _twin(typ, code, rng, cfg, pose=None):
    """A twin image of the given type and dir (or 'star RC' / 'OK'), its box (or None) and its render."""
    pose = pose or Pose.random(rng, cfg)
    addr, mode = (None, "passed") if code.startswith("star") else parse_dir(code)
    bend = fit_bend(pose, addr, mode, np.deg2rad(np.mean(cfg.bend_deg))) if addr else 0.0
    rend = render_scene(pose, addr, mode, bend)
    img = dst_from(rend, render_scene(pose.nudged(rng, cfg.ref_jitter)), cfg.dst_gain) if typ == "DST" else rend.image
    box = defect_box(rend, addr) if addr else None
    if code.startswith("star"):
        star = Address.from_code(code.split()[1])
        img = draw_star(img.copy(), rend.tips[ALL_ADDRESSES.index(star)])
    return img, box, rend


def _caption(img, text, box=None):
    img = img.copy()
    d = ImageDraw.Draw(img)
    if box:
        d.rectangle(box, outline=(0, 255, 0), width=2)
    d.rectangle([0, H - 16, W, H], fill=(255, 255, 255))
    d.text((4, H - 14), text, fill=(0, 0, 0))
    return img


def _zoom(img, box, text, half=(68, 46)):
    """A crop centred on ``box`` (box drawn), scaled 3x to the sheet's cell size."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    x0, y0 = int(min(max(cx - half[0], 0), W - 2 * half[0])), int(min(max(cy - half[1], 0), H - 2 * half[1]))
    crop = img.crop((x0, y0, x0 + 2 * half[0], y0 + 2 * half[1])).resize((W, H), Image.LANCZOS)
    k = W / (2 * half[0])
    return _caption(crop, text, [(box[0] - x0) * k, (box[1] - y0) * k, (box[2] - x0) * k, (box[3] - y0) * k])


def compare_figure(out, root=DEFAULT_REFERENCE, seed: int = 0) -> Path:
    """Each real cut-out beside a twin image of the same type and dir, four across, boxes drawn in green."""
    real = load_real(root)
    rng, cfg = np.random.default_rng(seed), RenderConfig()
    cells = []
    for key, (img, typ, code, bbox) in real.items():
        twin, tbox, _ = _twin(typ, code, rng, cfg)
        cells.append(_caption(img, f"REAL {typ} {code} ({key})", bbox))
        cells.append(_caption(twin, f"TWIN {typ} {code}", tbox))
        if bbox and tbox:                                   # and both defects up close: same crop size, 3x
            cells.append(_zoom(img, bbox, f"REAL {code} up close"))
            cells.append(_zoom(twin, tbox, f"TWIN {code} up close"))
    cols, pad = 4, 6
    rows = -(-len(cells) // cols)
    sheet = Image.new("RGB", (cols * (W + pad), rows * (H + pad)), (255, 255, 255))
    for i, c in enumerate(cells):
        sheet.paste(c, ((i % cols) * (W + pad), (i // cols) * (H + pad)))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out


def nuisance_report(root=DEFAULT_REFERENCE, n: int = 60, seed: int = 0) -> str:
    """Pin-top residuals after a shift+rotation+scale fit: real RAW cut-outs beside twin RAW renders, one detector."""
    rng, cfg = np.random.default_rng(seed), RenderConfig()
    lines = ["pin-top residuals (px) after a shift+rotation+scale fit of the detected pin tops"]
    for key, (img, typ, code, _) in load_real(root).items():
        if typ == "RAW":
            nom, tops = _kept_tops(img, _pins_named(code))
            res = similarity_residuals(nom, tops)
            lines.append(f"  real {key}: {len(res)} pins, mean {res.mean():.2f}, median {np.median(res):.2f}, "
                         f"max {res.max():.2f}; after an affine fit mean {affine_residuals(nom, tops).mean():.2f}")
    kept = [_kept_tops(render_scene(Pose.random(rng, cfg)).image) for _ in range(n)]
    twin = [similarity_residuals(*k) for k in kept]
    lines.append(f"  twin, {n} passed renders (detected): mean {np.mean([r.mean() for r in twin]):.2f}, "
                 f"median {np.median(np.concatenate(twin)):.2f}, "
                 f"max per image {np.mean([r.max() for r in twin]):.2f} (range {min(r.max() for r in twin):.2f}"
                 f"-{max(r.max() for r in twin):.2f}), pins found {np.mean([len(r) for r in twin]):.1f}; "
                 f"after an affine fit mean {np.mean([affine_residuals(*k).mean() for k in kept]):.2f}")
    from .render import twin_residuals

    exact = twin_residuals(n, seed)
    lines.append(f"  twin, {n} passed poses (exact projected tops): mean {exact.mean():.2f}, "
                 f"max per image {exact.max(1).mean():.2f}")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m qeu_vlm.twin.figure", description=__doc__.split("\n\n")[0])
    p.add_argument("--compare", metavar="OUT.png", help="write the side-by-side figure here")
    p.add_argument("--reference", default=str(DEFAULT_REFERENCE), help="folder of the real reference figures")
    p.add_argument("--nuisance", action="store_true", help="print the pin-top residuals, real beside twin")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    if not (a.compare or a.nuisance):
        p.error("nothing to do: give --compare OUT.png and/or --nuisance")
    if a.compare:
        print(f"wrote {compare_figure(a.compare, a.reference, a.seed)}")
    if a.nuisance:
        print(nuisance_report(a.reference, seed=a.seed))
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
