"""Offline benchmarks (:mod:`.benchmarks`: scikit-learn's digits and Fashion-MNIST from
local files) and the whole-tensor training path (:mod:`.fast_data`)."""

from .benchmarks import (
    DataNotFoundError,
    PermutedTensorDataset,
    digits_tensors,
    find_fmnist_files,
    fmnist_tensors,
    permuted_digits,
    permuted_fmnist,
    split_digits,
    split_fmnist,
    torchvision_fmnist_root,
)
from .fast_data import (
    FastDataPlugin,
    TensorLoader,
    TensorSource,
    sources_from_flat_datasets,
)

__all__ = [
    "DataNotFoundError",
    "FastDataPlugin",
    "PermutedTensorDataset",
    "TensorLoader",
    "TensorSource",
    "digits_tensors",
    "find_fmnist_files",
    "fmnist_tensors",
    "permuted_digits",
    "permuted_fmnist",
    "sources_from_flat_datasets",
    "split_digits",
    "split_fmnist",
    "torchvision_fmnist_root",
]
