"""The docs keep up with the code: every option `--set` takes is described in docs/configuration.md."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from playworld.models.registry import get_family, list_families
from playworld.train.config import TrainConfig

DOCS = Path(__file__).resolve().parents[1] / "docs"


def _named(text: str) -> set[str]:
    return set(re.findall(r"`(?:train\.|model\.)?([a-z_0-9]+)`", text))


def test_every_train_option_is_documented():
    missing = [f.name for f in dataclasses.fields(TrainConfig) if f.name not in _named((DOCS / "configuration.md").read_text())]
    assert not missing, f"docs/configuration.md does not describe train.{', train.'.join(missing)}"


@pytest.mark.parametrize("family", [f for f in list_families() if f != "tiny-test"])  # the suite registers tiny-test
def test_every_model_option_is_documented(family):
    text = (DOCS / "configuration.md").read_text()
    missing = [f.name for f in dataclasses.fields(get_family(family).Config) if f.name not in _named(text)]
    assert not missing, f"docs/configuration.md does not describe {family}'s model.{', model.'.join(missing)}"
