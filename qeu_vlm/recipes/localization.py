"""The localisation attempts of the learn research, each the learn profile with one change, on one twin.

``python -m qeu_vlm.research.localization ATTEMPT [ATTEMPT ...]`` (``table`` prints the results gathered so far).
"""

# name -> (what changes, Config or LearnSettings fields). Every attempt ran on the profile of 2026-11-21 (the
# schematic twin, a 10-minute clock, a fixed 500-step vision warm-up): FIRST keeps it. The attempts made before the
# warm-up became the profile's default ran without it; OLD keeps them as they ran. The warm-up they ran (a max-pooled
# passed-vs-defective head, until 2026-12-03) is now the per-token one, so FIRST's attempts rerun differently.
FIRST = {"twin_look": "schematic", "start": "scratch", "learning_rate": 1e-3, "balance_judgement": False,
         "max_steps": 1200, "time_budget_s": 600,
         "vision_warmup_steps": 500}
OLD = {**FIRST, "vision_warmup_steps": 0}
ATTEMPTS = {
    "default": ("the learn profile as it was (RoPE theta 1e4, mRoPE sections t4/h6/w6), no vision warm-up", OLD),
    "rope-theta-10": ("RoPE theta 10: every rotary frequency faster, so neighbouring image columns differ",
                      {**OLD, "tiny_overrides": {"rope_theta": 10.0}}),
    "mrope-width": ("mRoPE sections t2/h4/w10 with theta 100: more and faster frequencies for the width axis",
                    {**OLD, "tiny_overrides": {"rope_theta": 100.0, "mrope_section": [2, 4, 10]}}),
    "pin-per-token": ("images at 308x210, so one merged 28-px token spans about one pin pitch (88 tokens/image)",
                      {**OLD, "image_size": (308, 210), "max_pixels": 308 * 224}),
    "constant-lr": ("constant learning rate after warm-up instead of cosine decay",
                    {**OLD, "lr_schedule": "constant_with_warmup"}),
    "long-30": ("the default, trained 30 CPU-minutes", {**OLD, "time_budget_s": 1800, "max_steps": 3600}),
    "long-60": ("the default, trained 60 CPU-minutes", {**OLD, "time_budget_s": 3600, "max_steps": 7200}),
    "long-30-lr5e-4": ("30 CPU-minutes at the rate that let the 60-minute run learn (5e-4)",
                       {**OLD, "time_budget_s": 1800, "max_steps": 3600, "learning_rate": 5e-4}),
    "long-60-lr5e-4": ("60 CPU-minutes at half the peak rate (5e-4): long-60 blew up at 0.0009",
                       {**OLD, "time_budget_s": 3600, "max_steps": 7200, "learning_rate": 5e-4}),
    "warmup-30": ("the profile with its vision warm-up (500 steps, inside the budget), trained 30 CPU-minutes",
                  {**FIRST, "time_budget_s": 1800, "max_steps": 3600}),
}
