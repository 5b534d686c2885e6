"""Synthetic twin generation speed: ``python -m benchmarks.synth_speed [N]`` (target: 2,000 records <= 60 s).

Times generation and writing (dataset on disk + Drive folders) separately and prints records/s.
"""
import os
import platform
import sys
import tempfile
import time
from datetime import date

from qeu_vlm.synth import SynthConfig, write_twin


def main(n=2000):
    cfg = SynthConfig(n_train=n * 3 // 4, n_test=n - n * 3 // 4, seed=0)
    t0 = time.perf_counter()
    twin = cfg.generate(progress=False)
    t1 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        write_twin(twin, os.path.join(d, "twin"))
    t2 = time.perf_counter()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; date {date.today()}")
    print("| records | generate s | write s | total s | records/s | target <= 60 s |")
    print(f"| {n} | {t1 - t0:.1f} | {t2 - t1:.1f} | {t2 - t0:.1f} | {n / (t2 - t0):.0f} | "
          f"{'met' if t2 - t0 <= 60 * n / 2000 else 'MISSED'} |")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
