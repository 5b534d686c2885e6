"""What runs the task's core for people: the run folder's steps, the main job, the classic baseline, the VRAM
planner, the report page, publishing, the command line, the notebook runner and the vision warm-up."""
