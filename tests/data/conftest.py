"""Fixtures for the data tests."""

import pytest
from synthetic_data import write_synthetic


@pytest.fixture
def synthetic(tmp_path):
    """A factory: synthetic(lengths, resolution=32) -> dataset path (appends when called again)."""
    path = tmp_path / "ds"
    return lambda lengths, resolution=32: write_synthetic(path, lengths, resolution)
