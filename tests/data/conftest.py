"""Fixtures for the data tests."""

import shutil
from pathlib import Path

import pytest
from synthetic_data import write_synthetic

from playworld.data.store import LAYOUTS

SCHEMA1 = Path(__file__).parent / "fixtures" / "schema1"
"""a dataset written by the schema-1 store (fixtures/make_schema1.py): synthetic episodes of lengths 6, 5, 7"""


@pytest.fixture
def synthetic(tmp_path):
    """A factory: synthetic(lengths, resolution=32, layout=None) -> dataset path (appends when called again)."""
    path = tmp_path / "ds"
    return lambda lengths, resolution=32, layout=None: write_synthetic(path, lengths, resolution, layout=layout)


@pytest.fixture(params=LAYOUTS)
def layout(request) -> str:
    """Each episode layout in turn: compressed (the default), raw."""
    return request.param


@pytest.fixture
def schema1(tmp_path) -> Path:
    """A writable copy of the schema-1 dataset."""
    return Path(shutil.copytree(SCHEMA1, tmp_path / "schema1"))
