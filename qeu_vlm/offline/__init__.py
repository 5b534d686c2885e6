"""Models built offline with random weights: the tiny Qwen2.5-VL of the tests, smoke runs and the main job
(``tiny_model``), and every preset family's architecture (``random_models``)."""
