"""Data loading: ``Dataset``, ``TensorDataset``, ``DataLoader``, ``random_split`` and bundled datasets."""
from . import datasets
from .dataloader import DataLoader, default_collate
from .dataset import Dataset, Subset, TensorDataset, random_split
from .datasets import load_breast_cancer, load_digits, train_test_split

__all__ = ["Dataset", "TensorDataset", "Subset", "random_split", "DataLoader", "default_collate", "datasets",
           "load_digits", "load_breast_cancer", "train_test_split"]
