"""Offline datasets (scikit-learn's bundled files, the UCI Heart Disease sites, MedMNIST files on disk, your
own arrays or torch data) and client partitioners."""

from fl_core.data.datasets import (
    DATASETS,
    HEART_DISEASE_SITE_SIZES,
    HEART_DISEASE_SITES,
    Dataset,
    dataset_from_arrays,
    dataset_from_torch,
    dataset_problem,
    is_known_dataset,
    load_dataset,
    load_heart_disease,
    load_medmnist,
    standardize,
)
from fl_core.data.partition import PARTITIONERS, label_counts, partition

__all__ = [
    "DATASETS",
    "HEART_DISEASE_SITES",
    "HEART_DISEASE_SITE_SIZES",
    "PARTITIONERS",
    "Dataset",
    "dataset_from_arrays",
    "dataset_from_torch",
    "dataset_problem",
    "is_known_dataset",
    "label_counts",
    "load_dataset",
    "load_heart_disease",
    "load_medmnist",
    "partition",
    "standardize",
]
