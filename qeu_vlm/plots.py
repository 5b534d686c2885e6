"""Figures: sample sheets, reference pools, learning curves, evaluation plots, example answers.

Each takes ``path``: saved there (and closed) so notebooks and commands show the same PNG from the run folder.
Matplotlib picks a headless backend by itself where there is no display; forcing one would stop notebooks
drawing inline. Every figure is read at 100% in a notebook: no text under 9 pt, a title saying what it shows
(model, shot, how many records), and nothing added together without saying so.
"""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.patches import Rectangle

from .answer import show_answer
from .data import Pools, decode
from .domain import IMAGE_SIZE, PASSED, parse_bbox

SMALL = 9        # pt: the smallest text in any figure
TYPES = (("CYLN_RAW", "RAW"), ("CYLN_DST", "DST"))


def _finish(fig, path, dpi=100):
    fig.tight_layout()
    if path:
        fig.savefig(path, dpi=dpi)
        plt.close(fig)
    return fig


def _row_label(ax, text):
    """A row's name left of its first image (the axes are off, so ylabel would not show)."""
    ax.text(-0.06, 0.5, text, transform=ax.transAxes, rotation=90, ha="right", va="center", fontsize=11,
            fontweight="bold")


def _box(ax, im, bbox, color="red"):
    """The defect box of ``bbox_str`` (pixels of the 410-px image), scaled to the image as shown."""
    mode, (x1, y1, x2, y2) = parse_bbox(bbox)
    if mode == PASSED:
        return mode
    sx, sy = im.size[0] / IMAGE_SIZE[0], im.size[1] / IMAGE_SIZE[1]
    ax.add_patch(Rectangle((x1 * sx, y1 * sy), (x2 - x1) * sx, (y2 - y1) * sy, fill=False, color=color, lw=2))
    return mode


def sample_sheet(records, pools: Pools | None = None, per_type: int = 3, path=None):
    """Defective examples of each image type with their bbox drawn, a passed one, and star images.

    The RAW and DST rows are different records (the first of each type in the split), not one defect seen twice.
    """
    rows = []
    kinds = list(zip(records["type"], records["dir"]))     # the columns alone: no image is decoded to choose
    for typ, short in TYPES:
        defective = [i for i, (t, d) in enumerate(kinds) if t == typ and d != "OK"][:per_type]
        passed = [i for i, (t, d) in enumerate(kinds) if t == typ and d == "OK"][:1]
        chosen = [records[i] for i in defective + passed]
        rows.append((short, [(decode(r["image"]), r["bbox_str"], r["dir"]) for r in chosen]))
    if pools is not None:
        rows.append(("star", [(im, None, f"star at {addr} ({typ[5:]})")
                              for typ, _ in TYPES for im, addr in pools.stars[typ][:2]]))
    ncol = max(len(r) for _, r in rows)
    fig, axes = plt.subplots(len(rows), ncol, figsize=(3.4 * ncol, 2.7 * len(rows)), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, (label, row) in enumerate(rows):
        _row_label(axes[i][0], label)
        for j, (im, bbox, title) in enumerate(row):
            ax = axes[i][j]
            ax.imshow(im)
            if bbox:
                mode = _box(ax, im, bbox)
                title = "OK: passed" if mode == PASSED else f"dir {title}: {mode}"
            ax.set_title(title, fontsize=10)
    fig.suptitle("Training records: RAW renders, DST difference images (red box: the bent pin), star images",
                 fontsize=12)
    return _finish(fig, path, 80)


def pool_sheet(pools: Pools, per_kind: int = 5, path=None):
    """The reference pools: passed images, and star images with the address each star teaches."""
    rows = [(f"passed {t[5:]}", [(im, f"passed {t[5:]} #{k + 1}") for k, im in enumerate(pools.passed[t][:per_kind])])
            for t, _ in TYPES]
    rows += [(f"star {t[5:]}", [(im, f"star at {a}") for im, a in pools.stars[t][:per_kind]]) for t, _ in TYPES]
    fig, axes = plt.subplots(len(rows), per_kind, figsize=(3.0 * per_kind, 2.4 * len(rows)), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, (name, ims) in enumerate(rows):
        _row_label(axes[i][0], name)
        for j, (im, title) in enumerate(ims):
            axes[i][j].imshow(im)
            axes[i][j].set_title(title, fontsize=10)
    fig.suptitle("Reference pools: passed images (the reference of every inspection) and star images (one-shot)",
                 fontsize=12)
    return _finish(fig, path, 80)


def _run_title(run: Path) -> str:
    """``model, N training conversations`` from the run folder's ``config.json`` and ``train_stats.json``, where
    they are there."""
    bits = []
    if (run / "config.json").exists():
        cfg = json.loads((run / "config.json").read_text())
        model = str(cfg.get("model"))        # a model folder is named by its folder, never by a machine path
        name = Path(model).name if "/" in model else model
        bits.append(f"model {name}" + (" (smoke)" if cfg.get("smoke_mode") else ""))
    stats = run / "train_stats.json"       # written with the log: the count trained on, balancing included
    if stats.exists() and "train_conversations" in (n := json.loads(stats.read_text())):
        bits.append(f"{n['train_conversations']} training conversations")
    return ", ".join(bits)


def learning_curves(log_history_json, path=None, title: str | None = None):
    """Train and eval loss against step, read only from the saved ``log_history.json``; ``title`` defaults to
    the model and record count read from the same run folder."""
    from matplotlib.ticker import MaxNLocator

    log = json.loads(Path(log_history_json).read_text())
    train = [(h["step"], h["loss"]) for h in log if "loss" in h]
    evals = [(h["step"], h["eval_loss"]) for h in log if "eval_loss" in h]
    steps = max([s for s, _ in train + evals], default=0)
    fig, ax = plt.subplots(figsize=(7, 4))
    if train:
        ax.plot(*zip(*train), label="train loss", marker=".")
    if evals:
        ax.plot(*zip(*evals), label="eval loss", marker="o")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))      # steps are whole: no tick at step 1.5
    ax.set_xlabel("optimizer step", fontsize=11)
    ax.set_ylabel("cross-entropy loss", fontsize=11)
    ax.tick_params(labelsize=10)
    about = title if title is not None else _run_title(Path(log_history_json).parent)
    ax.set_title(f"Learning curves, {steps} steps" + (f"\n{about}" if about else ""), fontsize=12)
    ax.legend(fontsize=10)
    ax.grid(alpha=0.3)
    return _finish(fig, path, 100)


def _counts(ax, values, norm_max, fmt):
    """Numbers on a heatmap, white on dark cells and black on light ones, so every count can be read."""
    import numpy as np

    for (i, j), v in np.ndenumerate(values):
        text = fmt(i, j, v)
        if text:
            dark = norm_max and v / norm_max > 0.55
            ax.text(j, i, text, ha="center", va="center", fontsize=10, color="white" if dark else "black")


def evaluation_plots(rows: list[dict], path=None, title: str = ""):
    """Per shot mode (one row of panels each, never added together): the defect-mode confusion matrix and a 3x9
    heatmap of how often the position answer missed each true defective pin."""
    import numpy as np
    from matplotlib.ticker import MaxNLocator

    from .domain import MODES, ROWS, Address

    modes = list(MODES) + ["unreadable"]
    shots = sorted({r.get("shot", "zero") for r in rows}, key=lambda s: (s != "zero", s)) or ["zero"]
    fig, axes = plt.subplots(len(shots), 2, figsize=(14, 4.6 * len(shots)), squeeze=False,
                             gridspec_kw={"width_ratios": [1, 1.25]})
    for (ax1, ax2), shot in zip(axes, shots):
        these = [r for r in rows if r.get("shot", "zero") == shot]
        conf = np.zeros((len(MODES), len(modes)), int)
        wrong, total = np.zeros((3, 9)), np.zeros((3, 9))
        for r in these:
            t, p = r["truth"], r["parsed"]
            conf[MODES.index(t["defect_mode"]), modes.index(p["defect_mode"] or "unreadable")] += 1
            if t["position"] != PASSED:
                a = Address.parse(t["position"])
                total[a.row_index, a.col - 1] += 1
                wrong[a.row_index, a.col - 1] += p["position"] != t["position"]
        im1 = ax1.imshow(conf, cmap="Blues", vmin=0)
        ax1.set_xticks(range(len(modes)), modes, rotation=30, ha="right", fontsize=10)
        ax1.set_yticks(range(len(MODES)), MODES, fontsize=10)
        ax1.set_xlabel("predicted defect mode", fontsize=11)
        ax1.set_ylabel("true defect mode", fontsize=11)
        _counts(ax1, conf, conf.max(), lambda i, j, v: str(v))
        ax1.set_title(f"{shot}-shot: defect mode, {len(these)} answers", fontsize=11)
        bar = fig.colorbar(im1, ax=ax1, fraction=0.035)
        bar.set_label("answers", fontsize=10)
        bar.locator = MaxNLocator(integer=True)      # counts: no tick at 0.5 answers
        bar.update_ticks()
        rate = np.divide(wrong, total, out=np.full_like(wrong, np.nan), where=total > 0)
        im2 = ax2.imshow(rate, cmap="Reds", vmin=0, vmax=1)
        ax2.set_xticks(range(9), range(1, 10), fontsize=10)
        ax2.set_yticks(range(3), ROWS, fontsize=10)
        ax2.set_xlabel("column (X address)", fontsize=11)
        ax2.set_ylabel("row (Y address)", fontsize=11)
        _counts(ax2, np.nan_to_num(rate), 1.0,
                lambda i, j, v: f"{int(wrong[i, j])}/{int(total[i, j])}" if total[i, j] else "")
        ax2.set_title(f"{shot}-shot: wrong position / defective parts at each pin (blank: none)", fontsize=11)
        fig.colorbar(im2, ax=ax2, fraction=0.025).set_label("share with the wrong pin", fontsize=10)
    fig.suptitle(f"{title}: {len(rows)} answers, {len(shots)} shot mode(s) shown apart" if title else "",
                 fontsize=12)
    return _finish(fig, path, 100)


def example_figure(conv: dict, predicted: str, truth: str, path=None, bbox: str | None = None, title: str = ""):
    """As the original posts showed them: the conversation's images, the AI response beside the dataset answer.
    ``bbox``: the test record's ``bbox_str``, drawn on the test image so the true pin can be seen."""
    from .conversation import images_of

    images = images_of(conv)
    fig, axes = plt.subplots(1, len(images) + 1, figsize=(3.6 * (len(images) + 1), 3.3),
                             gridspec_kw={"width_ratios": [1] * len(images) + [1.5]})
    names = (["star example"] if len(images) == 3 else []) + ["passed reference", "test image"]
    for k, (ax, im, name) in enumerate(zip(axes, images, names[-len(images):] if len(images) > 1
                                          else ["reference / test"])):
        ax.imshow(im)
        if bbox and k == len(images) - 1:
            name += "" if _box(ax, im, bbox, color="lime") == PASSED else " (green: true pin)"
        ax.set_title(name, fontsize=10)
        ax.axis("off")
    axes[-1].axis("off")
    axes[-1].text(0, 1, "AI RESPONSE\n" + show_answer(predicted) + "\n\nDATASET ANSWER\n" + truth,
                  va="top", family="monospace", fontsize=SMALL, wrap=True)
    if title:
        fig.suptitle(title, fontsize=11)
    return _finish(fig, path, 90)


def marked_test_image(record, predicted_position: str | None, path=None, title: str = ""):
    """A test record's image with the true defect box (green) and the pin the answer named (red cross), so a
    wrong address is seen at a glance; a passed part has no box, an answer naming no pin no cross."""
    from .domain import Address, DomainError, pin_centre

    im = decode(record["image"])
    fig, ax = plt.subplots(figsize=(4.1, 3.0))
    ax.imshow(im)
    _box(ax, im, record["bbox_str"], color="lime")
    try:
        x, y = pin_centre(Address.parse(predicted_position))
    except DomainError:
        pass                                     # passed, or no readable address: nothing to mark
    else:
        sx, sy = im.size[0] / IMAGE_SIZE[0], im.size[1] / IMAGE_SIZE[1]
        ax.plot(x * sx, y * sy, marker="x", color="red", markersize=14, markeredgewidth=3)
    ax.set_title(title, fontsize=SMALL)
    ax.axis("off")
    return _finish(fig, path, 90)
