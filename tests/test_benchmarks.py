"""The benchmark commands run end to end (figures are checked by reading them, not by timed tests)."""
import re

from benchmarks import cpu, gpu


def test_cpu_benchmark_prints_every_figure(capsys):
    rows = cpu.main(["--quick"])
    names = [r[0] for r in rows]
    assert names == ["twin generation + write", "conversion", "collator (TRL + loss mask)", "tiny-model training",
                     "inspection, batched 16 vs one-by-one", "smoke replay (main job)"]
    out = capsys.readouterr().out
    assert re.search(r"machine: .*cores.*date \d{4}-\d\d-\d\d", out)
    assert re.search(r"\| inspection, batched 16 vs one-by-one \| 8 samples \| [\d.]+ s vs [\d.]+ s \| [\d.]+x \|", out)
    assert re.search(r"[\d.]+ steps/s, [\d.]+ samples/s", out)


def test_gpu_script_runs_on_cpu_with_the_tiny_model(capsys, tmp_path):
    rows = dict(gpu.main(["--tiny", "--backends", "hf,unsloth", "--steps", "2", "--out", str(tmp_path)]))
    for shot in ("zero", "one"):
        hf = rows[f"tiny-{shot}-hf"]
        assert hf["steps"] == 2 and hf["samples/s"] > 0 and hf["tokens/s"] > 0 and "error" not in hf
        assert "unsloth" in rows[f"tiny-{shot}-unsloth"]["error"].lower()      # says why it cannot run here
    assert "device: CPU" in capsys.readouterr().out


def test_gpu_script_names_families_it_does_not_build(tmp_path):
    import pytest

    with pytest.raises(NotImplementedError, match="mllama is not built"):
        gpu.build_random("llama-3.2-11b-vision", tmp_path / "m", 560 * 560)
