"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest
from video_corpus import build_corpus


@pytest.fixture(scope="session")
def video_corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``{name: path}`` of the PyAV-written test videos and broken files (see tests/video_corpus.py)."""
    return build_corpus(tmp_path_factory.mktemp("video_corpus"))
