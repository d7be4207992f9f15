"""Offline datasets (scikit-learn's bundled files, your own arrays or torch data) and client partitioners."""

from fl_core.data.datasets import (
    DATASETS,
    Dataset,
    dataset_from_arrays,
    dataset_from_torch,
    load_dataset,
    standardize,
)
from fl_core.data.partition import PARTITIONERS, label_counts, partition

__all__ = [
    "DATASETS",
    "PARTITIONERS",
    "Dataset",
    "dataset_from_arrays",
    "dataset_from_torch",
    "label_counts",
    "load_dataset",
    "partition",
    "standardize",
]
