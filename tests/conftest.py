import importlib.util
import os
import sys
from pathlib import Path

import pytest

from qeu_vlm.backend import triton_on_cpu
from qeu_vlm.twin.synth import SynthConfig, write_twin

# Every entry point chooses the backend before TRL is imported; test modules import TRL at collection, so the one
# thing that choice must do first (Triton's interpreter for TRL 1.15's loss kernel on CPU) is done here, first.
triton_on_cpu()

sys.path.insert(0, str(Path(__file__).parent))     # tests/unsloth_seam.py, for tests and their subprocesses
HAS_UNSLOTH = importlib.util.find_spec("unsloth") is not None
HAS_VLLM = importlib.util.find_spec("vllm") is not None


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "unsloth: runs Unsloth's own code on CPU (the Colab lane, where it is installed)"
    )
    config.addinivalue_line("markers", "vllm: runs vLLM (the vLLM lane, where it is installed)")
    config.addinivalue_line("markers", "slow: takes more than a few seconds; `-m 'not slow'` is the quick loop")
    config.addinivalue_line("markers", "cpu_processes: trains and resumes in several CPU processes (not the Colab "
                            "lane: its transformers 5.17 Trainer maps a resumed run's optimizer to device cpu:N, "
                            "which torch cannot load; Colab has one GPU)")


def pytest_collection_modifyitems(config, items):
    _deselect_vllm(config, items)
    _deselect_cpu_processes_in_colab_lane(config, items)
    _unsloth_last(config, items)


def _deselect_cpu_processes_in_colab_lane(config, items):
    """The Colab lane's transformers cannot resume a run trained in several CPU processes (the ``cpu_processes``
    marker says why); the usual lane runs those tests."""
    marked = [i for i in items if "cpu_processes" in i.keywords]
    if os.environ.get("STACK") != "colab" or not marked:
        return
    config.hook.pytest_deselected(items=marked)
    items[:] = [i for i in items if "cpu_processes" not in i.keywords]
    print(f"\n{len(marked)} multi-process CPU test(s) deselected: transformers 5.17 resumes them on device cpu:N "
          "(the usual lane runs them)")


def _deselect_vllm(config, items):
    """Without vLLM (the usual and Colab lanes) its tests are deselected, and said so; in the vLLM lane a missing
    vLLM is an error, never a deselection."""
    marked = [i for i in items if "vllm" in i.keywords]
    if HAS_VLLM or not marked:
        return
    if os.environ.get("STACK") == "vllm":
        raise pytest.UsageError("the vLLM lane (STACK=vllm) runs where vLLM is not installed")
    config.hook.pytest_deselected(items=marked)
    items[:] = [i for i in items if "vllm" not in i.keywords]
    print(f"\n{len(marked)} vLLM tests deselected: vllm is not installed here "
          "(STACK=vllm bash scripts/test.sh runs them)")


def _unsloth_last(config, items):
    """Without Unsloth (the usual lane) its tests are deselected, and said so; with it (the Colab lane) they run
    last, because importing Unsloth patches TRL for the rest of the process."""
    marked = [i for i in items if "unsloth" in i.keywords]
    if not HAS_UNSLOTH:
        if marked:
            config.hook.pytest_deselected(items=marked)
            items[:] = [i for i in items if "unsloth" not in i.keywords]
            print(f"\n{len(marked)} Unsloth tests deselected: unsloth is not installed here "
                  "(STACK=colab bash scripts/test.sh runs them)")
        return
    items[:] = [i for i in items if "unsloth" not in i.keywords] + marked


@pytest.fixture(scope="session")
def twin():
    # the schematic look: a fast picture for tests (the project measures itself on the rendered one)
    return SynthConfig(n_train=40, n_test=12, seed=3, n_average=8, n_pool=4, look="schematic").generate(progress=False)


@pytest.fixture(scope="session")
def twin_dir(twin, tmp_path_factory):
    return write_twin(twin, tmp_path_factory.mktemp("twin") / "out")


@pytest.fixture(scope="session")
def smoke_model(tmp_path_factory):
    """The smoke model and its processor, loaded once (tests may train it further: nothing asserts its weights)."""
    from qeu_vlm.config import Config
    from qeu_vlm.model import load_model
    from qeu_vlm.tools.steps import loadable

    return load_model(loadable(Config().smoke(), tmp_path_factory.mktemp("warm")), "hf")


@pytest.fixture
def setup(twin, twin_dir, smoke_model):
    """A fresh smoke config (tests change it), the smoke model and twelve conversations (4 one-shot)."""
    from qeu_vlm.config import Config
    from qeu_vlm.conversation import convert, shot_plan
    from qeu_vlm.data import load_pools

    recs = twin.splits["CYLNimages_train_1015"][:12]
    convs = convert(recs, load_pools(twin_dir / "drive"), shot_plan(12, one_shot_first=4), seed=0)
    return (Config().smoke(), *smoke_model, convs)
