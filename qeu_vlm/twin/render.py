"""The rendered twin: RAW images ray-cast from a 3D scene of the connector, DST images computed from those renders.

The scene: 27 cylinders (radius ``PIN_R``, height ``PIN_H``) standing on the floor of a box housing with walls,
seen by a perspective camera that sits off-centre and aims back at the pin field, as the real camera0..camera7
poses do; so the outer pins lean 10-20 px and the lean pattern changes with each pose (a non-rigid nuisance).
World units are pixels of the pin-top plane at the nominal pose, so the pin tops land on ``domain.pin_centre``
and the labels stay exact. A bent pin is a tilted cylinder: it looks longer and points the way it bends.

Why a vectorised numpy ray caster and not a renderer from the registries: it installs nothing (a fresh machine
and Colab run it as is, no GL/EGL context, no wheels that lag Python releases), and a scene this simple
(planes and 27 cylinders, each cast only inside its projected window) renders in a few ms per image.

``python -m qeu_vlm.twin.figure --compare OUT.png`` draws the twin beside the real reference figures.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from ..domain import ALL_ADDRESSES, COL_PITCH, COL_X0, IMAGE_SIZE, LEFT, MODE_VECTORS, PASSED, ROW_Y, TOP, pin_centre

W, H = IMAGE_SIZE
CX0, CY0 = COL_X0 + 4 * COL_PITCH, ROW_Y["C"]        # principal point: the middle pin
PIN_R, PIN_H = 10.5, 40.0
FOCAL = 340.0                                        # pin-top plane at magnification 1 from FOCAL above it
WALL_H = 48.0
OUTER = (40.0, 86.0, 430.0, 266.0)                   # housing rim, outer edge (x0, y0, x1, y1) at z = WALL_H
INNER = (62.0, 97.0, 408.0, 250.0)                   # opening of the box; the walls drop to the floor (z = 0)
PIN_RGB = np.array([162, 202, 202], np.float32)
LIGHT = (np.array([-0.45, -0.5, 1.0]) / np.linalg.norm([-0.45, -0.5, 1.0])).astype(np.float32)
REF_BLUR = 2.0                                       # px: softness of the passed reference (see dst_from)
LABEL_RGB = (236, 200, 208)                          # pinkish, as in the real label bands
DIGIT_X = np.linspace(75, 386, 9)                    # evenly spaced: "1" sits ~11 px left of its pin
LETTER_Y = {"U": 116, "C": 164, "D": 214}
# The real poses' camera offsets (camera0..camera7), in pin-top pixels; each image adds jitter.
CAMERA_POSES = ((0, 0), (-55, -20), (55, -20), (-55, 24), (55, 24), (-30, 6), (32, -6), (0, -30))

_VU, _VV = np.meshgrid(np.arange(TOP, H, dtype=np.float32) + 0.5, np.arange(LEFT, W, dtype=np.float32) + 0.5,
                       indexing="ij")


# The widest pose ranges that keep every pin under its label band.
POSE_LIMITS = {"pose_jitter": 40.0, "aim_jitter": 8.0, "roll_deg": 5.0, "scale_jitter": 0.1, "ref_jitter": 10.0,
               "bright_jitter": 15.0}


class RenderError(ValueError):
    """An invalid renderer option; the message names the field."""


@dataclass
class RenderConfig:
    """What varies between rendered images. Ranges are (low, high); validated on creation."""

    pose_jitter: float = 10.0            # px of camera offset added to the camera0..7 pose
    aim_jitter: float = 2.0              # px the camera's aim point wanders (shifts the pin field)
    roll_deg: float = 0.8                # camera roll, +-degrees
    scale_jitter: float = 0.02           # relative change of camera distance
    bend_deg: tuple = (24.0, 32.0)       # a bent pin's tilt from vertical
    ref_jitter: float = 3.0              # px: the passed reference's pose differs from the test's by this much
    bright_fraction: float = 0.3         # share of DST images whose reference pose differs a lot (bright areas)
    bright_jitter: float = 7.0
    dst_gain: float = 1.5
    jpeg_quality: int = 90

    def __post_init__(self):
        for name in ("pose_jitter", "aim_jitter", "roll_deg", "scale_jitter", "ref_jitter", "bright_jitter",
                     "dst_gain"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not np.isfinite(v) or v < 0:
                raise RenderError(f"RenderConfig.{name} must be a finite number >= 0, got {v!r}")
        for name, most in POSE_LIMITS.items():
            if getattr(self, name) > most:
                raise RenderError(f"RenderConfig.{name} = {getattr(self, name)!r} is too wide (at most {most}): "
                                  "beyond it pins leave their label bands and the labels stop being exact")
        lo, hi = (tuple(self.bend_deg) + (None, None))[:2]
        if len(tuple(self.bend_deg)) != 2 or not (5 <= lo <= hi <= 45):
            raise RenderError(f"RenderConfig.bend_deg must be (low, high) with 5 <= low <= high <= 45, "
                              f"got {self.bend_deg!r}")
        if not 0 <= self.bright_fraction <= 1:
            raise RenderError(f"RenderConfig.bright_fraction must be in [0, 1], got {self.bright_fraction!r}")
        if not (isinstance(self.jpeg_quality, int) and 30 <= self.jpeg_quality <= 100):
            raise RenderError(f"RenderConfig.jpeg_quality must be an int in 30..100, got {self.jpeg_quality!r}")


@dataclass
class Pose:
    """A camera: where it sits (offset from above the middle pin), where it aims, roll and distance scale."""

    ox: float = 0.0
    oy: float = 0.0
    ax: float = 0.0
    ay: float = 0.0
    roll: float = 0.0                    # radians
    scale: float = 1.0
    camera: int = 0

    @classmethod
    def random(cls, rng: np.random.Generator, cfg: RenderConfig) -> "Pose":
        cam = int(rng.integers(len(CAMERA_POSES)))
        bx, by = CAMERA_POSES[cam]
        j = rng.uniform(-1, 1, 5)
        return cls(bx + cfg.pose_jitter * j[0], by + cfg.pose_jitter * j[1], cfg.aim_jitter * j[2],
                   cfg.aim_jitter * j[3], np.deg2rad(cfg.roll_deg * j[4]), 1 + cfg.scale_jitter * rng.uniform(-1, 1),
                   cam)

    def nudged(self, rng: np.random.Generator, px: float) -> "Pose":
        """The same camera, slightly moved: how a passed reference differs from the test image."""
        j = rng.uniform(-1, 1, 4)
        return Pose(self.ox + 3 * px * j[0], self.oy + 3 * px * j[1], self.ax + px * j[2], self.ay + px * j[3],
                    self.roll, self.scale, self.camera)

    def frame(self):
        """Camera centre and orthonormal axes (right, down, forward)."""
        target = np.array([CX0 + self.ax, CY0 + self.ay, PIN_H])
        c = np.array([CX0 + self.ox, CY0 + self.oy, PIN_H + FOCAL * self.scale])
        fwd = target - c
        fwd /= np.linalg.norm(fwd)
        right = np.array([1.0, 0, 0]) - fwd[0] * fwd
        right /= np.linalg.norm(right)
        down = np.cross(right, fwd)
        cr, sr = np.cos(self.roll), np.sin(self.roll)
        return c, cr * right + sr * down, -sr * right + cr * down, fwd

    def project(self, p) -> np.ndarray:
        """World points (..., 3) -> image pixels (..., 2)."""
        c, r, d, f = self.frame()
        q = np.asarray(p, float) - c
        z = q @ f
        return np.stack([CX0 + FOCAL * (q @ r) / z, CY0 + FOCAL * (q @ d) / z], -1)


def pin_axis(addr, mode: str = PASSED, bend: float = 0.0):
    """Base point and top point of a pin in the world; a bent pin tilts by ``bend`` radians its mode's way."""
    x, y = pin_centre(addr)
    base = np.array([x, y, 0.0])
    if mode == PASSED:
        return base, base + [0, 0, PIN_H]
    vx, vy = MODE_VECTORS[mode]
    return base, base + PIN_H * np.array([np.sin(bend) * vx, np.sin(bend) * vy, np.cos(bend)])


def fit_bend(pose: Pose, addr, mode: str, bend: float, margin: float = 3.0) -> float:
    """``bend``, reduced in 2-degree steps until the bent tip stays inside the picture (col 9 X-plus, row U Y-plus
    under a wide pose), so the tip always lies in the box and the box inside the image."""
    while bend > np.deg2rad(6):
        x, y = pose.project(pin_axis(addr, mode, bend)[1])
        if LEFT + margin <= x <= W - 1 - margin and TOP + margin <= y <= H - 1 - margin:
            break
        bend -= np.deg2rad(2)
    return bend


@dataclass
class Render:
    """A RAW render: the image (labels drawn), which pin each content pixel shows (-1: none), pin tips in pixels."""

    image: Image.Image
    ids: np.ndarray                      # (H - TOP, W - LEFT)
    tips: np.ndarray                     # (27, 2) projected top centres, image pixels
    caps: np.ndarray                     # (H - TOP, W - LEFT) bool: a pin's top cap


def _floor_shade(x, y):
    """The housing floor: dark slots under the pin columns, ribs between them crossed by diagonal struts (pin to pin,
    as in the real renders), a soft light in the middle."""
    u = ((x - COL_X0) / COL_PITCH) % 1.0
    w = ((y - ROW_Y["U"]) / (ROW_Y["C"] - ROW_Y["U"])) % 1.0
    rib = np.clip(np.abs(u - 0.5) * -6 + 1.6, 0, 1)                         # bright between columns
    strut = np.exp(-(np.minimum(np.abs(u - w), np.abs(u + w - 1)) * (COL_PITCH / 6)) ** 2)
    spot = np.exp(-((x - CX0) / 70) ** 2 - ((y - CY0) / 90) ** 2)
    return 0.06 + 0.1 * rib + 0.22 * strut * (0.5 + 0.5 * rib) + 0.25 * spot * rib + 0.08 * spot


# Material colours; a pixel is PALETTE[material] * shade (+ white specular on pins).
TABLE, RIM, FLOOR, WALL, PIN = range(5)
PALETTE = np.array([[178, 172, 150], [48, 78, 140], [95, 110, 170], [60, 90, 165], PIN_RGB], np.float32)


def render_scene(pose: Pose, defect=None, mode: str = PASSED, bend: float = 0.0, labels: bool = True) -> Render:
    """Ray-cast the housing and the 27 pins as ``pose`` sees them."""
    c, r, d, f = (v.astype(np.float32) for v in pose.frame())
    u, v = (_VV - CX0) / FOCAL, (_VU - CY0) / FOCAL
    dirs = f + u[..., None] * r + v[..., None] * d                              # (h, w, 3), not normalised
    dx, dy, dz = dirs[..., 0], dirs[..., 1], dirs[..., 2]
    # Rim plane and the box: outside the rim is the grey-beige table, inside the opening the floor or a wall.
    t_rim = (WALL_H - c[2]) / dz
    rx, ry = c[0] + t_rim * dx, c[1] + t_rim * dy
    in_outer = (rx >= OUTER[0]) & (rx <= OUTER[2]) & (ry >= OUTER[1]) & (ry <= OUTER[3])
    in_inner = (rx >= INNER[0]) & (rx <= INNER[2]) & (ry >= INNER[1]) & (ry <= INNER[3])
    mat = np.where(in_outer, RIM, TABLE).astype(np.int8)
    shade = np.where(in_outer, 0.75 + 0.25 * np.clip(np.minimum(np.abs(rx - INNER[0]), np.abs(rx - INNER[2])) / 20,
                                                      0, 1),
                     0.85 + 0.15 * np.clip(1 - np.abs(ry - CY0) / 160, 0, 1)).astype(np.float32)
    t_floor = -c[2] / dz
    depth = np.where(in_inner, t_floor, t_rim)
    fx, fy = c[0] + t_floor * dx, c[1] + t_floor * dy
    floor_in = (fx >= INNER[0]) & (fx <= INNER[2]) & (fy >= INNER[1]) & (fy <= INNER[3])
    on_floor, hit_wall = in_inner & floor_in, in_inner & ~floor_in
    shade[on_floor] = _floor_shade(fx[on_floor], fy[on_floor])
    # A ray that enters the opening but would reach the floor outside it meets the wall it crosses first.
    wdx, wdy, wdz, wfx, wfy = dx[hit_wall], dy[hit_wall], dz[hit_wall], fx[hit_wall], fy[hit_wall]
    with np.errstate(divide="ignore", invalid="ignore"):
        tx = np.where(wfx < INNER[0], (INNER[0] - c[0]) / wdx,
                      np.where(wfx > INNER[2], (INNER[2] - c[0]) / wdx, np.inf))
        ty = np.where(wfy < INNER[1], (INNER[1] - c[1]) / wdy,
                      np.where(wfy > INNER[3], (INNER[3] - c[1]) / wdy, np.inf))
    t = np.minimum(tx, ty)
    lit = np.where(tx < ty, np.where(wfx < INNER[0], 0.75, 0.55), np.where(wfy < INNER[1], 0.45, 0.65))
    shade[hit_wall] = lit * (0.35 + 0.65 * np.clip((c[2] + t * wdz) / WALL_H, 0, 1))    # darker toward the floor
    depth[hit_wall] = t
    mat[on_floor], mat[hit_wall] = FLOOR, WALL
    ids = np.full(dz.shape, -1, np.int16)
    caps = np.zeros(dz.shape, bool)
    axes = [pin_axis(addr, mode if addr == defect else PASSED, bend) for addr in ALL_ADDRESSES]
    p0s = np.array([p0 for p0, _ in axes], np.float32)
    units = np.array([(p1 - p0) / PIN_H for p0, p1 in axes], np.float32)
    ends = pose.project(np.concatenate([p0s, p0s + PIN_H * units]))
    tips = ends[len(axes):]
    comps = (np.ascontiguousarray(dx), np.ascontiguousarray(dy), np.ascontiguousarray(dz))
    pad = PIN_R * 1.25 + 2
    lo, hi = np.minimum(ends[:len(axes)], tips).tolist(), np.maximum(ends[:len(axes)], tips).tolist()
    for i in range(len(axes)):                   # plain floats: numpy's min/max on 2 numbers cost more than the cast
        x0, x1 = int(max(lo[i][0] - pad - LEFT, 0)), int(min(hi[i][0] + pad - LEFT + 1, W - LEFT))
        y0, y1 = int(max(lo[i][1] - pad - TOP, 0)), int(min(hi[i][1] + pad - TOP + 1, H - TOP))
        if x0 < x1 and y0 < y1:
            win = (slice(y0, y1), slice(x0, x1))
            _cast_pin(c, [k[win] for k in comps], p0s[i], units[i], depth[win], ids[win], caps[win], i)
    # Shade every pin pixel at once: Lambert + Blinn specular, pins darker toward the floor. Vectors are kept as
    # separate x/y/z arrays: numpy's sums over a length-3 last axis cost more than the arithmetic.
    pix = ids >= 0
    k = ids[pix]
    t = depth[pix]
    d3 = [comp[pix] for comp in comps]
    a3 = units[k].T
    p3 = [c[j] + t * d3[j] - p0s[k, j] for j in range(3)]
    h = p3[0] * a3[0] + p3[1] * a3[1] + p3[2] * a3[2]
    n3 = [p3[j] - h * a3[j] for j in range(3)]
    inv = 1 / np.maximum(np.sqrt(n3[0] ** 2 + n3[1] ** 2 + n3[2] ** 2), 1e-6)
    cap = caps[pix]
    n3 = [np.where(cap, a3[j], n3[j] * inv) for j in range(3)]
    vinv = -1 / np.sqrt(d3[0] ** 2 + d3[1] ** 2 + d3[2] ** 2)
    half = [LIGHT[j] + d3[j] * vinv for j in range(3)]
    hinv = 1 / np.sqrt(half[0] ** 2 + half[1] ** 2 + half[2] ** 2)
    spec = np.zeros(dz.shape, np.float32)
    spec[pix] = np.clip((n3[0] * half[0] + n3[1] * half[1] + n3[2] * half[2]) * hinv, 0, 1) ** 24
    lam = np.clip(n3[0] * LIGHT[0] + n3[1] * LIGHT[1] + n3[2] * LIGHT[2], 0, 1)
    shade[pix] = (0.62 + 0.5 * lam) * (0.7 + 0.3 * np.clip(h / PIN_H, 0, 1))
    mat[pix] = PIN
    rgb = PALETTE[mat] * shade[..., None] + 60 * spec[..., None]
    content = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).filter(ImageFilter.BoxBlur(1.0))
    img = Image.new("RGB", (W, H), (0, 0, 0))
    img.paste(content, (LEFT, TOP))
    return Render(draw_labels(img) if labels else img, ids, tips, caps)


def _cast_pin(c, dw, p0, a, depth, ids, caps, i):
    """Intersect one (possibly tilted) cylinder, axis ``a`` from ``p0``, with a window's rays; update its maps."""
    dx, dy, dz = dw
    w0 = c - p0
    da = dx * a[0] + dy * a[1] + dz * a[2]
    wa = float(w0 @ a)
    wp = w0 - wa * a
    px, py, pz = dx - da * a[0], dy - da * a[1], dz - da * a[2]
    qa = px * px + py * py + pz * pz
    qb = 2 * (px * wp[0] + py * wp[1] + pz * wp[2])
    qc = float(wp @ wp) - PIN_R ** 2
    disc = qb * qb - 4 * qa * qc
    t_side = (-qb - np.sqrt(np.maximum(disc, 0))) / (2 * qa)
    h_side = wa + t_side * da
    side_ok = (disc > 0) & (h_side >= 0) & (h_side <= PIN_H)
    t_cap = (PIN_H - wa) / da
    e = w0 - PIN_H * a
    hx, hy, hz = e[0] + t_cap * dx, e[1] + t_cap * dy, e[2] + t_cap * dz
    cap_ok = hx * hx + hy * hy + hz * hz <= PIN_R ** 2
    is_cap = cap_ok & ~(side_ok & (t_side < t_cap))
    t = np.where(is_cap, t_cap, np.where(side_ok, t_side, np.inf))
    near = t < depth
    depth[near], ids[near], caps[near] = t[near], i, is_cap[near]


_FONT = None


def label_font():
    """The label bands' font (both looks of the twin draw the same digits and letters)."""
    global _FONT
    if _FONT is None:
        try:
            _FONT = ImageFont.load_default(size=24)
        except TypeError:                 # Pillow < 10.1 has no sized default font
            _FONT = ImageFont.load_default()
    return _FONT


_BANDS = None


def draw_labels(img: Image.Image) -> Image.Image:
    """The black label bands as in the real images: digits evenly spaced x 75..386, letters at y 116/164/214.

    Drawn once and pasted: the text is the same on every image.
    """
    global _BANDS
    if _BANDS is None:
        bands = Image.new("RGB", (W, H), (0, 0, 0))
        dr = ImageDraw.Draw(bands)
        for i, x in enumerate(DIGIT_X):
            dr.text((float(x), TOP / 2), str(i + 1), fill=LABEL_RGB, font=label_font(), anchor="mm")
        for row, y in LETTER_Y.items():
            dr.text((LEFT / 2 - 4, y), row, fill=LABEL_RGB, font=label_font(), anchor="mm")
        _BANDS = bands.crop((0, 0, W, TOP)), bands.crop((0, 0, LEFT, H))
    img.paste(_BANDS[0], (0, 0))
    img.paste(_BANDS[1], (0, 0))
    return img


def dst_of(rend: Render, pose: Pose, rng: np.random.Generator, cfg: RenderConfig, far: bool = False) -> Image.Image:
    """The DST image of ``rend`` (rendered at ``pose``) against a passed render of a nudged pose, as the twin makes
    its records; ``far``: a reference far off in pose (the bright areas of some passed parts)."""
    ref = render_scene(pose.nudged(rng, cfg.bright_jitter if far else cfg.ref_jitter), labels=False)
    return dst_from(rend, ref, cfg.dst_gain)


def dst_from(test: Render, ref: Render, gain: float = 1.5) -> Image.Image:
    """A DST image as the originals were made: the test render's difference against a passed render, smoothed.

    Colours follow the real ones: housing differences come out blue, pin rims cyan, and where both renders show a
    pin top the centre is dark red; a bent pin is an elongated bright shape along its bend.
    """
    a = np.asarray(test.image, np.float32)[TOP:, LEFT:]
    # The originals compared against passed images of the same pose, several of them: their average is soft, so every
    # edge of the test image leaves a ring. One passed render, blurred, stands in for that average (one render, not 8).
    b = np.asarray(ref.image.crop((LEFT, TOP, W, H)).filter(ImageFilter.GaussianBlur(REF_BLUR)), np.float32)
    diff = np.abs(a - b)
    # The original tool's colour: brightness from the largest channel difference, hue from the test image.
    mag = np.maximum(np.maximum(diff[..., 0], diff[..., 1]), diff[..., 2])[..., None]
    hue = a / np.maximum(np.maximum(np.maximum(a[..., 0], a[..., 1]), a[..., 2]), 1)[..., None]
    out = gain * (0.55 * mag * hue + 0.45 * diff)
    housing = (a[..., 0] + a[..., 1] + a[..., 2]) / 360 * (test.ids < 0)            # faint blue housing, off the pins
    out += np.array([10, 16, 50], np.float32) * housing[..., None]
    both = (test.caps & ref.caps)[..., None] * np.clip(1 - mag / 70, 0, 1)      # cap centres, where renders agree
    out = out * (1 - 0.4 * both) + both * np.array([60, 4, 10], np.float32)
    content = Image.fromarray(np.clip(out, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(1.2))
    img = Image.new("RGB", (W, H), (0, 0, 0))
    img.paste(content, (LEFT, TOP))
    return draw_labels(img)


def defect_box(rend: Render, addr, min_size=(33, 35), max_size=(49, 55), pad: int = 6):
    """The bent pin's visible extent in image pixels, grown to the real boxes' size range, clipped to the picture."""
    i = ALL_ADDRESSES.index(addr)
    ys, xs = np.nonzero(rend.ids == i)
    x1, x2 = xs.min() + LEFT - pad, xs.max() + LEFT + 1 + pad
    y1, y2 = ys.min() + TOP - pad, ys.max() + TOP + 1 + pad
    tx, ty = rend.tips[i]
    box = []
    for lo, hi, tip, mn, mx, start, limit in ((x1, x2, tx, min_size[0], max_size[0], LEFT, W),
                                              (y1, y2, ty, min_size[1], max_size[1], TOP, H)):
        if hi - lo < mn:
            grow = mn - (hi - lo)
            lo, hi = lo - grow // 2, hi + grow - grow // 2
        if hi - lo > mx:                  # keep the tip's end: that is where the bend shows
            lo, hi = (lo, lo + mx) if abs(tip - lo) < abs(tip - hi) else (hi - mx, hi)
        lo, hi = max(int(lo), start), min(int(hi), limit - 1)            # inside the picture, off the label bands
        box.append((lo, hi))
    return box[0][0], box[1][0], box[0][1], box[1][1]


def draw_star(img: Image.Image, tip) -> Image.Image:
    """A red five-point star centred on ``tip`` (a pin top), as in the one-shot teaching images."""
    tx, ty = tip
    ang = np.pi / 2 + np.arange(10) * np.pi / 5
    rad = np.where(np.arange(10) % 2 == 0, 13.0, 5.5)
    ImageDraw.Draw(img).polygon([(tx + r * np.cos(a), ty - r * np.sin(a)) for r, a in zip(rad, ang)],
                                fill=(230, 30, 40))
    return img


def jpeg_bytes(img: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def similarity_residuals(nominal: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Per-point residual (px) after the best shift + rotation + scale fit of ``nominal`` onto ``observed``.

    A rigid/similarity nuisance leaves ~0; perspective lean from a tilted camera leaves several pixels.
    """
    from skimage.transform import SimilarityTransform

    p, q = np.asarray(nominal, float), np.asarray(observed, float)
    return np.linalg.norm(SimilarityTransform.from_estimate(p, q)(p) - q, axis=1)


def nominal_tops() -> np.ndarray:
    return np.array([pin_centre(a) for a in ALL_ADDRESSES])


def twin_residuals(n: int = 200, seed: int = 0, cfg: RenderConfig | None = None) -> np.ndarray:
    """Similarity-fit residuals of the visible pin tops of ``n`` passed renders: (n, 27) pixels."""
    cfg = cfg or RenderConfig()
    rng = np.random.default_rng(seed)
    tops = np.stack([pin_axis(a)[1] for a in ALL_ADDRESSES])
    return np.stack([similarity_residuals(nominal_tops(), Pose.random(rng, cfg).project(tops)) for _ in range(n)])

