"""The smoke shrink: the same steps as a real run, small and offline, with the tiny randomly initialised model.

What ``Config.smoke()`` replaces; it is decided at every ``Config.open``, so a real run's settings are never
overwritten by it. Run with ``SMOKE = True`` in a notebook (or ``QEU_VLM_SMOKE=1``), ``python -m qeu_vlm notebooks
--run DIR`` (smoke by default), ``python -m qeu_vlm main-job --smoke``. A zero-shot recipe stays zero-shot
(``one_shot_first`` is at most the value here).
"""

SMOKE = dict(model="tiny", backend="hf", n_train=48, n_test=16, one_shot_first=12, n_eval=8, n_inspect=8,
             max_steps=4, eval_steps=2, save_steps=2, batch_size=2, grad_accum=1, max_pixels=224 * 160,
             max_length=1024, full_finetune=True, learning_rate=1e-3, max_new_tokens=48, gradient_checkpointing=False)
