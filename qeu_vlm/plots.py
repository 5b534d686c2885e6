"""Figures: dataset sample sheets (more to come: learning curves, confusion matrix, error heatmap)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from .data import Pools, decode  # noqa: E402
from .domain import PASSED, parse_bbox  # noqa: E402


def sample_sheet(records, pools: Pools | None = None, per_type: int = 3, path=None):
    """Defective examples of each image type with their bbox drawn, a passed one, and star images."""
    rows = []
    for typ in ("CYLN_RAW", "CYLN_DST"):
        defective = [r for r in records if r["type"] == typ and r["dir"] != "OK"][:per_type]
        passed = [r for r in records if r["type"] == typ and r["dir"] == "OK"][:1]
        rows.append([(decode(r["image"]), r["bbox_str"], r["dir"]) for r in defective + passed])
    if pools is not None:
        rows.append([(im, None, f"star at {addr}") for typ in ("CYLN_RAW", "CYLN_DST") for im, addr in pools.stars[typ][:2]])
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
    fig.tight_layout()
    if path:
        fig.savefig(path, dpi=80)
        plt.close(fig)
    return fig
