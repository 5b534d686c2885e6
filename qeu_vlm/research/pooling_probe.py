"""Why the from-scratch VLM is slow to read a DST image: the vision tower alone under each pooling.

``python -m qeu_vlm.research.pooling_probe --pool max|mean|attn``

The learn model's vision tower alone, from scratch, with a linear head on the judgement (passed or defective) of
one DST test image. The tower's tokens are pooled into one vector, and the pooling is the only thing that changes:
``max`` takes each feature's largest token, the way a threshold finds the blob; ``mean`` averages the tokens; and
``attn`` is one learned softmax query over them, the operation a language model's attention gives it.
Every ``--every`` steps the balanced accuracy on ``--n`` held-out records is printed (lines starting ``POOL``).

    python -m qeu_vlm.research.pooling_probe --pool max --threads 1
"""
from __future__ import annotations

import argparse
import json
import tempfile

POOLS = ("max", "mean", "attn")


def main(argv=None):
    import numpy as np
    import torch
    from datasets import load_from_disk

    from ..answer import answer_for
    from ..offline.tiny_model import build_tiny_vlm, load_tiny_vlm
    from .learn import learn_run
    from ..tools.vision_warmup import image_tokens, vision_tower

    a = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    a.add_argument("--pool", choices=POOLS, required=True)
    a.add_argument("--steps", type=int, default=600)
    a.add_argument("--every", type=int, default=50)
    a.add_argument("--batch-size", type=int, default=8)
    a.add_argument("--lr", type=float, default=1e-3)
    a.add_argument("--size", default="224x154", help="every image resized to WIDTHxHEIGHT, as the learn profile does")
    a.add_argument("--n", type=int, default=128, help="held-out records scored at each check")
    a.add_argument("--threads", type=int, default=2)
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--twin", default="runs/learn/twin", help="the learn profile's twin (TWIN/dataset)")
    args = a.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    size = tuple(int(v) for v in args.size.split("x"))
    cfg, lab = learn_run(tempfile.mkdtemp())
    model, processor = load_tiny_vlm(build_tiny_vlm(cfg.run_dir, seed=args.seed, size=lab.tiny_size,
                                                    max_pixels=cfg.max_pixels, **lab.tiny_overrides))
    tower = vision_tower(model)
    width = model.config.text_config.hidden_size
    ds = load_from_disk(f"{args.twin}/dataset")
    train, test = (ds[name] for name in sorted(ds, key=lambda s: "test" in s))

    def batch(records):
        x = [r["image"].convert("RGB").resize(size) for r in records]
        y = torch.tensor([answer_for(r).judgement != "passed" for r in records], dtype=torch.float)
        return x, y

    head, query = torch.nn.Linear(width, 1), torch.nn.Parameter(torch.randn(width) * 0.02)

    def logits(x):
        f = torch.stack(image_tokens(tower, processor, x)[0])               # (image, token, feature)
        if args.pool == "max":
            pooled = f.max(1).values
        elif args.pool == "mean":
            pooled = f.mean(1)
        else:
            pooled = (torch.softmax(f @ query, 1)[..., None] * f).sum(1)
        return head(pooled).squeeze(-1)

    opt = torch.optim.AdamW([*tower.parameters(), *head.parameters(), query], lr=args.lr, weight_decay=0.0)
    held_x, held_y = batch(test.select(range(min(args.n, len(test)))))
    log = []
    for step in range(1, args.steps + 1):
        x, y = batch(train.select(rng.integers(0, len(train), args.batch_size)))
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % args.every == 0:
            with torch.no_grad():
                p = logits(held_x) > 0
            t = held_y > 0
            recalls = [
                ((p == c) & (t == c)).sum().item() / (t == c).sum().item() for c in (True, False) if (t == c).any()
            ]
            bal = sum(recalls) / len(recalls)                       # a class absent from a small slice is left out
            log.append({"step": step, "loss": round(loss.item(), 3), "balanced_accuracy": round(bal, 3)})
            print("POOL", args.pool, json.dumps(log[-1]), flush=True)
    return log


if __name__ == "__main__":
    main()
