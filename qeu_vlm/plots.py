"""Figures: sample sheets, reference pools, learning curves, evaluation plots, example answers.

Each takes ``path``: saved there (and closed) so notebooks and commands show the same PNG from the run folder.
Matplotlib picks a headless backend by itself where there is no display; forcing one would stop notebooks
drawing inline.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.patches import Rectangle

from .data import Pools, decode
from .domain import PASSED, parse_bbox


def _finish(fig, path, dpi=100):
    fig.tight_layout()
    if path:
        fig.savefig(path, dpi=dpi)
        plt.close(fig)
    return fig


def sample_sheet(records, pools: Pools | None = None, per_type: int = 3, path=None):
    """Defective examples of each image type with their bbox drawn, a passed one, and star images."""
    rows = []
    for typ in ("CYLN_RAW", "CYLN_DST"):
        defective = [r for r in records if r["type"] == typ and r["dir"] != "OK"][:per_type]
        passed = [r for r in records if r["type"] == typ and r["dir"] == "OK"][:1]
        rows.append([(decode(r["image"]), r["bbox_str"], r["dir"]) for r in defective + passed])
    if pools is not None:
        rows.append(
            [(im, None, f"star at {addr}") for typ in ("CYLN_RAW", "CYLN_DST") for im, addr in pools.stars[typ][:2]]
        )
    ncol = max(len(r) for r in rows)
    fig, axes = plt.subplots(len(rows), ncol, figsize=(3.2 * ncol, 2.4 * len(rows)), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, row in enumerate(rows):
        for j, (im, bbox, title) in enumerate(row):
            ax = axes[i][j]
            ax.imshow(im)
            if bbox:
                mode, (x1, y1, x2, y2) = parse_bbox(bbox)
                if mode != PASSED:
                    ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, color="red", lw=1.5))
                title = f"{title}  {mode}"
            ax.set_title(title, fontsize=9)
    return _finish(fig, path, 80)


def pool_sheet(pools: Pools, per_kind: int = 5, path=None):
    """The reference pools: passed images, and star images with the address each star teaches."""
    rows = [(f"passed {t[5:]}", [(im, "") for im in pools.passed[t][:per_kind]]) for t in ("CYLN_RAW", "CYLN_DST")]
    rows += [
        (f"star {t[5:]}", [(im, f"star at {a}") for im, a in pools.stars[t][:per_kind]])
        for t in ("CYLN_RAW", "CYLN_DST")
    ]
    fig, axes = plt.subplots(len(rows), per_kind, figsize=(2.6 * per_kind, 2.0 * len(rows)), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, (name, ims) in enumerate(rows):
        for j, (im, title) in enumerate(ims):
            axes[i][j].imshow(im)
            axes[i][j].set_title(title or name, fontsize=8)
    return _finish(fig, path, 80)


def learning_curves(log_history_json, path=None):
    """Train and eval loss against step, read only from the saved ``log_history.json``."""
    import json

    log = json.loads(open(log_history_json).read())
    train = [(h["step"], h["loss"]) for h in log if "loss" in h]
    evals = [(h["step"], h["eval_loss"]) for h in log if "eval_loss" in h]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    if train:
        ax.plot(*zip(*train), label="train loss", marker=".")
    if evals:
        ax.plot(*zip(*evals), label="eval loss", marker="o")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title("Learning curves")
    ax.legend()
    ax.grid(alpha=0.3)
    return _finish(fig, path, 100)


def evaluation_plots(rows: list[dict], path=None, title: str = ""):
    """Defect-mode confusion matrix and a 3x9 heatmap of where position answers go wrong."""
    import numpy as np

    from .domain import MODES, ROWS, Address

    modes = list(MODES) + ["unreadable"]
    conf = np.zeros((len(MODES), len(modes)), int)
    wrong = np.zeros((3, 9))
    total = np.zeros((3, 9))
    for r in rows:
        t, p = r["truth"], r["parsed"]
        conf[MODES.index(t["defect_mode"]), modes.index(p["defect_mode"] or "unreadable")] += 1
        if t["position"] != "passed":
            a = Address.parse(t["position"])
            total[a.row_index, a.col - 1] += 1
            wrong[a.row_index, a.col - 1] += p["position"] != t["position"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4))
    ax1.imshow(conf, cmap="Blues")
    ax1.set_xticks(range(len(modes)), modes, rotation=45)
    ax1.set_yticks(range(len(MODES)), MODES)
    ax1.set_xlabel("predicted mode")
    ax1.set_ylabel("true mode")
    for (i, j), v in np.ndenumerate(conf):
        ax1.text(j, i, v, ha="center", va="center", fontsize=8)
    ax1.set_title("Defect mode confusion")
    rate = np.divide(wrong, total, out=np.full_like(wrong, np.nan), where=total > 0)
    im = ax2.imshow(rate, cmap="Reds", vmin=0, vmax=1)
    ax2.set_xticks(range(9), range(1, 10))
    ax2.set_yticks(range(3), ROWS)
    ax2.set_title("Position error rate by true pin (blank: no defects there)")
    for (i, j), v in np.ndenumerate(total):
        ax2.text(j, i, f"{int(wrong[i, j])}/{int(v)}" if v else "", ha="center", va="center", fontsize=7)
    fig.colorbar(im, ax=ax2, fraction=0.03)
    fig.suptitle(title)
    return _finish(fig, path, 100)


def example_figure(conv: dict, predicted: str, truth: str, path=None):
    """As the original posts showed them: the conversation's images, the AI response beside the dataset answer."""
    from .conversation import images_of

    images = images_of(conv)
    fig, axes = plt.subplots(1, len(images) + 1, figsize=(3.3 * (len(images) + 1), 2.8),
                             gridspec_kw={"width_ratios": [1] * len(images) + [1.3]})
    names = (["star example"] if len(images) == 3 else []) + ["passed reference", "test image"]
    for ax, im, name in zip(axes, images, names[-len(images):] if len(images) > 1 else ["reference / test"]):
        ax.imshow(im)
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    axes[-1].axis("off")
    axes[-1].text(0, 1, "AI RESPONSE\n" + (predicted.strip() or "(empty)") + "\n\nDATASET ANSWER\n" + truth,
                  va="top", family="monospace", fontsize=7, wrap=True)
    return _finish(fig, path, 90)
