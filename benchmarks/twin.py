"""Twin generation speed: ``python -m benchmarks.twin [--look rendered] [--n 2000]`` (target: 2,000 in <= 60 s)."""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def run(n: int = 2000, look: str = "rendered", seed: int = 0) -> float:
    """Seconds to generate and write ``n`` records (3/4 train, 1/4 test) plus the pools."""
    from qeu_vlm.twin.synth import SynthConfig, write_twin

    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        write_twin(SynthConfig(n_train=n - n // 4, n_test=n // 4, seed=seed, look=look).generate(progress=False),
                   Path(d) / "twin")
        return time.perf_counter() - t


def main(argv=None) -> float:
    a = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    a.add_argument("--n", type=int, default=2000)
    a.add_argument("--look", default="rendered", choices=("schematic", "rendered"))
    args = a.parse_args(argv)
    dt = run(args.n, args.look)
    verdict = "met" if dt * 2000 / args.n <= 60 else "MISSED"
    # The load average says whether the figure was taken on a busy machine.
    print(f"{args.look} twin: {args.n} records generated and written in {dt:.1f} s ({args.n / dt:.0f} records/s; "
          f"2,000 in <= 60 s: {verdict}); {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    return dt


if __name__ == "__main__":
    main()
