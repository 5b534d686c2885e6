"""The quick replay: every step of a run (data, base inspection, classic baseline, training, inspection, report) on
the twin with the smoke model, in about a minute, to see that the pipeline runs; its scores are noise.

``bash scripts/quick_replay.sh`` (= ``python -m qeu_vlm replay --out runs/quick_replay``): these values on top of
the smoke shrink (``smoke.SMOKE``); any ``Config`` flag overrides them. ``--full`` runs the preset's recipe instead.
"""

QUICK_REPLAY = dict(n_train=200, n_test=60, one_shot_first=50, max_steps=20, n_inspect=24)
