"""Data-validation core: compare a reference (training) dataset with current (serving) data."""
