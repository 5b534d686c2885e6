"""The recipes, in one place: each file is one recipe, plain data (``Config`` overrides, small dataclasses), with
the command that runs it in its docstring.

- ``smoke``: the one smoke shrink (``Config.smoke``): the same steps, small, offline, with the tiny model.
- ``quick_replay``: every step of a run, quickly, on top of the smoke shrink (``bash scripts/quick_replay.sh``).
- ``main_job``: the main job, a VLM learning on this CPU (``bash scripts/main_job.sh``).
- ``learn``: the learn research's profile (``python -m qeu_vlm learn``).
- ``localization``: the localisation attempts of the learn research (``python -m qeu_vlm.research.localization``).
"""
