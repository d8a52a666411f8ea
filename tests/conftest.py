"""Shared fixtures: reference data and small models."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def official_small() -> dict:
    """Outputs of the authors' released model (random weights) on a small configuration."""
    return torch.load(DATA / "official_small.pt", weights_only=True)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
