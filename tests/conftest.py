"""Shared fixtures: reference data, small models and the test video corpus."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from video_corpus import build_corpus, build_hostile

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def official_small() -> dict:
    """Outputs of the authors' released model (random weights) on a small configuration."""
    return torch.load(DATA / "official_small.pt", weights_only=True)


@pytest.fixture
def one_thread():
    """Tiny tensors: a second thread only adds overhead, and stalls badly when the CPU is shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def video_corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``{name: path}`` of the PyAV-written test videos and broken files (see tests/video_corpus.py)."""
    return build_corpus(tmp_path_factory.mktemp("video_corpus"))


@pytest.fixture(scope="session")
def hostile_corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``{name: path}`` of small hostile files: absurd sizes, playlists, frame/tag floods (tests/video_corpus.py)."""
    return build_hostile(tmp_path_factory.mktemp("hostile_corpus"))


from app_server import app_server, client  # noqa: E402, F401  (session fixtures of the app tests)


@pytest.fixture(scope="session")
def assets() -> Path:
    """The fetched third-party pictures and footage (``python -m posmlp_video assets fetch``).

    Fetched here when missing (CI downloads the pinned Debian packages); when that is impossible the
    test fails with the reason: real-pixel tests are never skipped silently.
    """
    from posmlp_video.assets import AssetError, cache_dir, fetch

    try:
        return fetch().parent
    except AssetError as err:
        pytest.fail(f"real-pixel test needs the assets in {cache_dir()} and fetching them failed: {err}")
