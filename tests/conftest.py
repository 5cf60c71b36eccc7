import warnings

import pytest
import torch
from _data import tensor_benchmark

warnings.filterwarnings("ignore", message="no QP solver found")

# Tiny models: one thread each is much faster than contending for 2 cores (pytest -n 2).
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_benchmark():
    return tensor_benchmark()


@pytest.fixture(scope="session")
def digits_benchmark():
    from avalanche_adahat.data import split_digits

    return split_digits(5, seed=0)
