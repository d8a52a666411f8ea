"""Session fixtures for the app tests: one in-process app on a free loopback port, serving the bundled
checkpoint (missing checkpoint: the fixture errors, it does not skip), with a checkpoint folder that holds a
copy of it and a symlink pointing outside."""

from __future__ import annotations

import shutil
import socket
from types import SimpleNamespace

import pytest

from posmlp_video.checkpoint import BUNDLED_CHECKPOINT


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def app_server(tmp_path_factory: pytest.TempPathFactory):
    """``.url``, ``.app``, ``.examples`` (example clip paths) and ``.folder`` of a running app."""
    from demo import build_app, launch
    from demo.examples import render_examples

    assert BUNDLED_CHECKPOINT.is_file(), f"the app tests need the bundled checkpoint {BUNDLED_CHECKPOINT}"
    folder = tmp_path_factory.mktemp("checkpoints")
    shutil.copy(BUNDLED_CHECKPOINT, folder / "copy.safetensors")
    outside = tmp_path_factory.mktemp("outside") / "outside.safetensors"
    shutil.copy(BUNDLED_CHECKPOINT, outside)
    (folder / "link_out.safetensors").symlink_to(outside)
    app = build_app(checkpoint_dir=folder)
    port = free_port()
    launch(app, port=port, prevent_thread_lock=True, quiet=True)
    examples = render_examples(tmp_path_factory.mktemp("examples"))  # the same clips the app shows
    yield SimpleNamespace(app=app, url=f"http://127.0.0.1:{port}/", folder=folder, examples=examples)
    app.close()


@pytest.fixture(scope="session")
def client(app_server):
    from gradio_client import Client

    return Client(app_server.url, verbose=False)
