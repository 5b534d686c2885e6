"""The synthetic twin: records shaped like the real Hub datasets, plus the Drive reference pools.

RAW images are drawn from pin geometry (perspective lean, camera shift/rotation, lighting); a bent
pin's top is displaced in its bend direction and its body elongated. DST images are *computed*: the
grey render is compared with the average of passed renders through seven 5x5 kernels at stride 5,
combined per block with a Minkowski p=4 distance, so a bent pin comes out bright because it differs.

>>> twin = SynthConfig(n_train=4, n_test=2, seed=0).generate(progress=False)
>>> twin.summary()["CYLNimages_test_1015"]["rows"]
2
"""
from __future__ import annotations

import csv
import io
import json
import os
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from huggingface_hub.utils import tqdm   # huggingface_hub's switch turns it off

from ..domain import (ALL_ADDRESSES, COL_PITCH, COL_X0, DEFECT_MODES, IMAGE_SIZE, LEFT, MODE_VECTORS, PASSED, ROW_Y,
                     ROWS, STAR_TABLE, TOP, Address, DomainError, describe, format_bbox, format_dir, format_position,
                     pin_centre)
from ..files import staged
from .render import label_font

W, H = IMAGE_SIZE
PIN_R = 10.5
BEND_PX = 9.0                            # ~10 degree bend of the pin's top
LEAN = 0.05                              # perspective: tops lean away from the optical centre
BLOCK = 5
DST_SCALE = 2.2                          # Minkowski distance -> uint8
LOOKS = ("schematic", "rendered")


class SynthError(ValueError):
    """An invalid twin option; the message names the field."""


@dataclass
class SynthConfig:
    """Parameters of the twin. Same parameters and seed give the same bytes; invalid ones raise ``SynthError``."""

    n_train: int = 1520
    n_test: int = 462
    seed: int = 0
    passed_fraction: float = 0.2
    dst_fraction: float = 0.5
    defect_pins: tuple | None = None     # pin codes like "9C"; None = all 27
    n_average: int = 24                  # passed renders averaged into the DST reference (schematic look)
    n_pool: int = 10                     # passed images and star images per type
    train_name: str = "CYLNimages_train_1015"
    test_name: str = "CYLNimages_test_1015"
    look: str = "rendered"               # ray-cast RAW, DST from renders, JPEG (qeu_vlm.twin.render), like the real
    #                                      images; "schematic": a fast drawing, kept for tests that need one
    render: dict | None = None           # RenderConfig options for look="rendered", e.g. {"bright_fraction": 0.5}

    def __post_init__(self):
        """Bad options fail here, naming the field, before minutes of generation."""
        if self.look not in LOOKS:
            raise SynthError(f"SynthConfig.look must be one of {LOOKS}, got {self.look!r}")
        for name in ("n_train", "n_test", "n_average", "n_pool", "seed"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < (1 if name in ("n_average",
                                                                                               "n_pool") else 0):
                raise SynthError(f"SynthConfig.{name} must be an int >= {1 if name in ('n_average', 'n_pool') else 0}"
                                 f", got {v!r}")
        for name in ("passed_fraction", "dst_fraction"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not 0 <= v <= 1:
                raise SynthError(f"SynthConfig.{name} must be a fraction in [0, 1], got {v!r}")
        if self.render is not None and self.look != "rendered":
            raise SynthError("SynthConfig.render applies to look='rendered' only")
        self.render_config()
        self.pins()

    def render_config(self):
        from .render import RenderConfig, RenderError

        try:
            return RenderConfig(**(self.render or {}))
        except TypeError as e:
            known = ", ".join(f.name for f in fields(RenderConfig))
            raise SynthError(f"SynthConfig.render: {e} (known: {known})") from None
        except RenderError as e:
            raise SynthError(f"SynthConfig.render: {e}") from None

    def generate(self, progress: bool = True) -> "Twin":
        return generate(self, progress)

    def pins(self) -> tuple[Address, ...]:
        if self.defect_pins is None:
            return ALL_ADDRESSES
        try:
            pins = tuple(Address.from_code(c) for c in self.defect_pins)
        except (DomainError, AttributeError) as e:
            raise SynthError(f"SynthConfig.defect_pins: {e}") from None
        if not pins:
            raise SynthError("SynthConfig.defect_pins is empty (None means all 27 pins)")
        return pins


@dataclass
class Camera:
    dx: float = 0.0
    dy: float = 0.0
    rot: float = 0.0                     # radians
    light: float = 1.0
    tilt: float = 0.0                    # left-right lighting gradient

    @classmethod
    def random(cls, rng: np.random.Generator) -> "Camera":
        return cls(dx=rng.uniform(-2, 2), dy=rng.uniform(-2, 2), rot=np.deg2rad(rng.uniform(-0.8, 0.8)),
                   light=rng.uniform(0.8, 1.1), tilt=rng.uniform(-0.15, 0.15))

    def apply(self, x, y):
        cx, cy = (LEFT + W) / 2, (TOP + H) / 2
        c, s = np.cos(self.rot), np.sin(self.rot)
        return cx + c * (x - cx) - s * (y - cy) + self.dx, cy + s * (x - cx) + c * (y - cy) + self.dy


def _pin_geometry(addr: Address, cam: Camera, mode: str = PASSED):
    bx, by = cam.apply(*pin_centre(addr))
    ocx, ocy = cam.apply((LEFT + W) / 2, (TOP + H) / 2)
    tx, ty = bx + LEAN * (bx - ocx), by + LEAN * (by - ocy)
    if mode != PASSED:
        vx, vy = MODE_VECTORS[mode]
        tx, ty = tx + BEND_PX * vx, ty + BEND_PX * vy
    return (bx, by), (tx, ty)


def _pin_extent(addr, cam, mode, margin=3):
    """Pixels the bend touches: the base, the bent top, and where the straight top was."""
    (bx, by), (tx, ty) = _pin_geometry(addr, cam, mode)
    _, (ox, oy) = _pin_geometry(addr, cam)
    xs, ys, r = (bx, tx, ox), (by, ty, oy), PIN_R + margin
    return (int(np.floor(min(xs) - r)), int(np.floor(min(ys) - r)),
            int(np.ceil(max(xs) + r)), int(np.ceil(max(ys) + r)))


def draw_labels(img: Image.Image) -> Image.Image:
    """Paste the black label bands: digits 1-9 across the top (X), U/C/D down the left (Y)."""
    d = ImageDraw.Draw(img)
    d.rectangle([0, 0, W, TOP - 1], fill=(0, 0, 0))
    d.rectangle([0, 0, LEFT - 1, H], fill=(0, 0, 0))
    for c in range(1, 10):
        d.text((COL_X0 + (c - 1) * COL_PITCH, TOP / 2), str(c), fill=(235, 225, 215), font=label_font(),
               anchor="mm")
    for r in ROWS:
        d.text((LEFT / 2, ROW_Y[r]), r, fill=(235, 225, 215), font=label_font(), anchor="mm")
    return img


def render_raw(cam: Camera, defect: Address | None = None, mode: str = PASSED, labels: bool = True) -> Image.Image:
    """A top view of the 27 pins on the housing, as the camera and lighting give it."""
    img = Image.new("RGB", (W, H), (18, 22, 30))
    d = ImageDraw.Draw(img)
    corners = [cam.apply(x, y) for x, y in ((LEFT - 20, 88), (W + 20, 88), (W + 20, 256), (LEFT - 20, 256))]
    d.rectangle([0, 0, W, H], fill=(150, 150, 145))                  # grey strips above and below
    d.polygon(corners, fill=(28, 42, 78))                               # dark-blue housing
    for addr in ALL_ADDRESSES:
        m = mode if addr == defect else PASSED
        (bx, by), (tx, ty) = _pin_geometry(addr, cam, m)
        d.line([(bx, by), (tx, ty)], fill=(70, 120, 130), width=int(2 * PIN_R))
        d.ellipse([bx - PIN_R, by - PIN_R, bx + PIN_R, by + PIN_R], fill=(70, 120, 130))
        d.ellipse([tx - PIN_R, ty - PIN_R, tx + PIN_R, ty + PIN_R], fill=(170, 225, 225))
        d.ellipse([tx - PIN_R * 0.45, ty - PIN_R * 0.6, tx + PIN_R * 0.1, ty - PIN_R * 0.05], fill=(225, 250, 250))
    a = np.asarray(img, dtype=np.float32)
    gradient = 1.0 + cam.tilt * np.linspace(-1, 1, W, dtype=np.float32)[None, :, None]
    img = Image.fromarray(np.clip(a * cam.light * gradient, 0, 255).astype(np.uint8))
    return draw_labels(img) if labels else img


def grey(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("L"), dtype=np.float32)[TOP:, LEFT:]


def _kernels() -> np.ndarray:
    """Seven 5x5 local features: mean, two gradients, two diagonals, Laplacian, ring."""
    u = np.linspace(-1, 1, 5, dtype=np.float32)
    X, Y = np.meshgrid(u, u)
    R = np.hypot(X, Y)
    ks = [np.ones((5, 5)) / 25, X / 5, Y / 5, (X + Y) / 7, (X - Y) / 7,
          (np.where(R < 0.1, 24.0, -1.0)) / 25, (R > 0.9).astype(np.float32) / 12 - (R <= 0.9) / 13]
    return np.stack([k.ravel() for k in ks], axis=1).astype(np.float32)    # (25, 7)


_K = _kernels()
_CHANNELS = ((0, 5, 6), (1, 3), (2, 4))                 # feature groups tinted red, green, blue


def block_features(g: np.ndarray) -> np.ndarray:
    h, w = g.shape[0] // BLOCK, g.shape[1] // BLOCK
    blocks = g[: h * BLOCK, : w * BLOCK].reshape(h, BLOCK, w, BLOCK).transpose(0, 2, 1, 3).reshape(h, w, 25)
    return blocks @ _K                                    # (h, w, 7)


def dst_image(render: Image.Image, reference: np.ndarray) -> Image.Image:
    """The N-SORTC-style difference image of a render against the passed average (grey, content area)."""
    g = grey(render)
    # Lighting is not a defect: match the render's column brightness profile to the reference's.
    g = g * (reference.mean(0) + 1.0) / (g.mean(0) + 1.0)
    diff = np.abs(block_features(g) - block_features(reference)) ** 4
    rgb = np.stack([diff[..., list(ch)].sum(-1) ** 0.25 for ch in _CHANNELS], -1)
    total = diff.sum(-1, keepdims=True) ** 0.25
    # A block that differs in every feature group turns white; edge shifts stay tinted.
    rgb = np.clip((0.5 * rgb + 0.5 * total) * DST_SCALE, 0, 255).astype(np.uint8)
    small = Image.fromarray(rgb)
    out = Image.new("RGB", (W, H), (0, 0, 0))
    out.paste(small.resize((small.width * BLOCK, small.height * BLOCK), Image.BILINEAR), (LEFT, TOP))
    return draw_labels(out)


def draw_star(img: Image.Image, addr: Address, cam: Camera | None = None, tip=None) -> Image.Image:
    """A red five-point star on one pin's top (``tip``, or where ``cam`` puts it), as in the one-shot images."""
    from .render import draw_star as star_at

    return star_at(img, tip if tip is not None else _pin_geometry(addr, cam)[1])


def _ext(data: bytes) -> str:
    return "jpg" if data[:2] == b"\xff\xd8" else "png"


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


@dataclass
class Twin:
    """What ``generate`` makes: record splits (dicts with PNG bytes) and the reference pools."""

    config: SynthConfig
    splits: dict = field(default_factory=dict)         # name -> list of records
    pools: dict = field(default_factory=dict)          # "DST"/"RAW"/"DST_STAR"/"RAW_STAR" -> [(file, png)]
    star_table: list = field(default_factory=list)     # [(file, type, address)]

    def summary(self) -> dict:
        out = {"config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self.config).items()}}
        return out | {name: describe(recs) for name, recs in self.splits.items()}


def generate(cfg: SynthConfig, progress: bool = True) -> Twin:
    if cfg.look == "rendered":
        return generate_rendered(cfg, progress)
    rng = np.random.default_rng(cfg.seed)
    ref = np.mean([grey(render_raw(Camera.random(rng), labels=False)) for _ in range(cfg.n_average)], axis=0)
    twin = Twin(cfg)
    pins = cfg.pins()
    total = cfg.n_train + cfg.n_test
    bar = tqdm(total=total, desc="synthesising twin", disable=not progress)
    for name, n in ((cfg.train_name, cfg.n_train), (cfg.test_name, cfg.n_test)):
        recs = []
        for _ in range(n):
            cam = Camera.random(rng)
            typ = "CYLN_DST" if rng.random() < cfg.dst_fraction else "CYLN_RAW"
            if rng.random() < cfg.passed_fraction:
                addr, mode = None, PASSED
                box = (147, 103, 328, 228)                  # every real passed row carries this box
            else:
                addr, mode = pins[rng.integers(len(pins))], DEFECT_MODES[rng.integers(4)]
                box = _pin_extent(addr, cam, mode)
            raw = render_raw(cam, addr, mode)
            img = dst_image(raw, ref) if typ == "CYLN_DST" else raw
            recs.append({"dir": format_dir(addr, mode), "position": format_position(addr), "type": typ,
                         "bbox_str": format_bbox(mode, box), "image": png_bytes(img)})
            bar.update()
        twin.splits[name] = recs
    bar.close()
    stars = rng.permutation(len(ALL_ADDRESSES))
    for kind in ("RAW", "DST"):
        for i in range(cfg.n_pool):
            cam = Camera.random(rng)
            raw = render_raw(cam)
            img = dst_image(raw, ref) if kind == "DST" else raw
            twin.pools.setdefault(kind, []).append((f"passed_{kind.lower()}_{i:02d}.png", png_bytes(img)))
            addr = ALL_ADDRESSES[stars[(i + (kind == "DST") * cfg.n_pool) % len(stars)]]
            star = draw_star(img.copy(), addr, cam)
            fname = f"star_{kind.lower()}_{i:02d}.png"
            twin.pools.setdefault(f"{kind}_STAR", []).append((fname, png_bytes(star)))
            twin.star_table.append((fname, f"CYLN_{kind}", addr.canonical))
    return twin


def generate_rendered(cfg: SynthConfig, progress: bool = True, workers: int | None = None) -> Twin:
    """The rendered look: ray-cast RAW, DST as the render's difference against a passed render, JPEG throughout.

    Each record draws from its own random stream (seed, split, index), so the records are rendered in ``workers``
    processes (default: one per core, for 200 records or more) and the bytes do not depend on how many.
    Pools as on the real Drive: a star image has the same file name as the passed image it was drawn on.
    """
    from .render import Pose, dst_of, jpeg_bytes, render_scene

    rc = cfg.render_config()
    twin = Twin(cfg)
    jobs = [(cfg, s, i) for s, n in enumerate((cfg.n_train, cfg.n_test)) for i in range(n)]
    if workers is None:
        workers = min(os.cpu_count() or 1, 8) if len(jobs) >= 200 and hasattr(os, "fork") else 1
    recs = []
    with tqdm(total=len(jobs), desc="rendering twin", disable=not progress) as bar, ExitStack() as stack:
        rendered = map(_rendered_record, jobs)
        if workers > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            # fork: the workers need nothing re-imported (spawn would re-run the caller's script); they use numpy
            # and Pillow only, never torch, whose OpenMP threads a fork must not meet
            pool = stack.enter_context(ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")))
            rendered = pool.map(_rendered_record, jobs, chunksize=16)
        for r in rendered:
            recs.append(r)
            bar.update()
    twin.splits[cfg.train_name], twin.splits[cfg.test_name] = recs[:cfg.n_train], recs[cfg.n_train:]
    rng = np.random.default_rng([cfg.seed, 2])
    stars = rng.permutation(len(ALL_ADDRESSES))
    number = 192                          # the real pools' file names: combined_image_simple_no192 ...
    for kind in ("RAW", "DST"):
        for i in range(cfg.n_pool):
            pose = Pose.random(rng, rc)
            rend = render_scene(pose)
            img = dst_of(rend, pose, rng, rc) if kind == "DST" else rend.image
            fname = f"combined_image_simple_no{number:03d}.jpg"
            number += 1
            twin.pools.setdefault(kind, []).append((fname, jpeg_bytes(img, rc.jpeg_quality)))
            addr = ALL_ADDRESSES[stars[(i + (kind == "DST") * cfg.n_pool) % len(stars)]]
            star = draw_star(img.copy(), addr, tip=rend.tips[ALL_ADDRESSES.index(addr)])
            twin.pools.setdefault(f"{kind}_STAR", []).append((fname, jpeg_bytes(star, rc.jpeg_quality)))
            twin.star_table.append((fname, f"CYLN_{kind}", addr.canonical))
    return twin


def _rendered_record(job: tuple) -> dict:
    """One record of the rendered twin: ``job`` is (config, split number, index), which seed its random stream."""
    from .render import Pose, defect_box, dst_of, fit_bend, jpeg_bytes, render_scene

    cfg, split, i = job
    rc, pins = cfg.render_config(), cfg.pins()
    rng = np.random.default_rng([cfg.seed, split, i])
    pose = Pose.random(rng, rc)
    typ = "CYLN_DST" if rng.random() < cfg.dst_fraction else "CYLN_RAW"
    if rng.random() < cfg.passed_fraction:
        addr, mode, bend = None, PASSED, 0.0
    else:
        addr, mode = pins[rng.integers(len(pins))], DEFECT_MODES[rng.integers(4)]
        bend = fit_bend(pose, addr, mode, np.deg2rad(rng.uniform(*rc.bend_deg)))
    rend = render_scene(pose, addr, mode, bend)
    box = (147, 103, 328, 228) if addr is None else defect_box(rend, addr)
    # Passed parts' DST sometimes come from a reference far off in pose: large bright areas on good pins.
    img = dst_of(rend, pose, rng, rc, addr is None and rng.random() < rc.bright_fraction) \
        if typ == "CYLN_DST" else rend.image
    return {"dir": format_dir(addr, mode), "position": format_position(addr), "type": typ,
            "bbox_str": format_bbox(mode, box), "image": jpeg_bytes(img, rc.jpeg_quality)}


def write_twin(twin: Twin, out: str | os.PathLike) -> Path:
    """Write ``dataset/`` (``datasets.load_from_disk``), ``drive/`` (Drive layout) and ``summary.json``.

    Written whole or not at all (``files.staged``): a crash never leaves a folder that looks complete.
    """
    import datasets

    with staged(out) as tmp:
        features = datasets.Features({k: datasets.Value("string") for k in ("dir", "position", "type", "bbox_str")}
                                     | {"image": datasets.Image()})
        dd = datasets.DatasetDict({
            name: datasets.Dataset.from_list(
                [r | {"image": {"bytes": r["image"], "path": None}} for r in recs], features=features)
            for name, recs in twin.splits.items()})
        was_off = datasets.are_progress_bars_disabled()      # the twin's own bar has shown the work; no second one
        datasets.disable_progress_bars()
        try:
            dd.save_to_disk(str(tmp / "dataset"))
        finally:
            if not was_off:
                datasets.enable_progress_bars()
        drive = tmp / "drive"
        for name, recs in twin.splits.items():
            (drive / name / "images").mkdir(parents=True)
            with open(drive / name / "metadata.csv", "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(["file_name", "dir", "position", "type", "bbox_str"])
                for i, r in enumerate(recs):
                    fn = f"images/{i:05d}.{_ext(r['image'])}"
                    (drive / name / fn).write_bytes(r["image"])
                    w.writerow([fn, r["dir"], r["position"], r["type"], r["bbox_str"]])
        for kind, files in twin.pools.items():
            (drive / "passed_image" / kind).mkdir(parents=True)
            for fn, data in files:
                (drive / "passed_image" / kind / fn).write_bytes(data)
        with open(drive / "passed_image" / STAR_TABLE, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["file_name", "type", "address"])
            w.writerows(twin.star_table)
        (tmp / "summary.json").write_text(json.dumps(twin.summary(), indent=2))
    return Path(out)
