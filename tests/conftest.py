import warnings

import pytest
from _data import tensor_benchmark

warnings.filterwarnings("ignore", message="no QP solver found")


@pytest.fixture(scope="session")
def tiny_benchmark():
    return tensor_benchmark()


@pytest.fixture(scope="session")
def digits_benchmark():
    from avalanche_adahat.benchmarks import split_digits

    return split_digits(5, seed=0)
