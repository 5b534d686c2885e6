import pytest

from qeu_vlm.synth import SynthConfig, write_twin


@pytest.fixture(scope="session")
def twin():
    return SynthConfig(n_train=40, n_test=12, seed=3, n_average=8, n_pool=4).generate(progress=False)


@pytest.fixture(scope="session")
def twin_dir(twin, tmp_path_factory):
    return write_twin(twin, tmp_path_factory.mktemp("twin") / "out")
