"""End-to-end latency of the app's ``/classify`` on a 10 s 720p H.264 clip (goal: <= 2 s on 2 CPU cores).

Starts ``python app.py`` (bundled checkpoint) as a separate process on a free loopback port, times start-up
to serving, then calls ``/classify`` through `gradio_client` (upload + decode + preprocess + model +
response) and prints a table. Not a test: timings depend on the machine and its load.

    python -m benchmarks.app_latency [--runs 5] [--clip PATH]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from posmlp_video.data import SynthMotion, probe_video

ROOT = Path(__file__).resolve().parents[1]


def make_clip(path: Path, seconds: float = 10.0, fps: int = 30, size: tuple[int, int] = (1280, 720)) -> Path:
    """A ``seconds``-long H.264 clip of SynthMotion motion upscaled to `size`, encoded frame by frame with PyAV
    (streamed, so a 300-frame 720p clip never sits in memory at once). Sensor-like noise that changes every
    frame keeps the bitrate (and the decoder's work) near a camera clip's, not a flat animation's."""
    source = SynthMotion(1, seed=3, num_frames=16, size=128)[0]["video"]  # (16, 128, 128, 3) uint8
    rng = np.random.default_rng(0)
    noise = [rng.normal(0, 6, (size[1], size[0], 3)).astype(np.int16) for _ in range(7)]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps), options={"preset": "veryfast", "crf": "23"})
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for i in range(int(seconds * fps)):
            image = cv2.resize(source[i * len(source) // int(seconds * fps)], size, interpolation=cv2.INTER_LINEAR)
            image = np.clip(image + noise[i % len(noise)], 0, 255).astype(np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")))
        container.mux(stream.encode(None))
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed /classify calls after one warm-up call")
    parser.add_argument("--clip", type=Path, help="use this clip instead of generating the 10 s 720p one")
    args = parser.parse_args()

    from gradio_client import Client, handle_file

    work = Path(tempfile.mkdtemp(prefix="posmlp-bench-"))
    clip = args.clip or make_clip(work / "clip_10s_720p.mp4")
    info = probe_video(clip)
    port = free_port()
    start = time.perf_counter()
    server = subprocess.Popen([sys.executable, "app.py", "--port", str(port)], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        client = None
        while client is None:
            if server.poll() is not None:
                sys.exit(f"app.py exited: {server.stderr.read().strip().splitlines()[-1:]}")
            try:
                client = Client(f"http://127.0.0.1:{port}/", verbose=False)
            except Exception:  # not serving yet
                time.sleep(0.25)
        startup = time.perf_counter() - start
        client.predict(handle_file(str(clip)), api_name="/classify")  # warm-up
        times = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            result = client.predict(handle_file(str(clip)), api_name="/classify")
            times.append(time.perf_counter() - t0)
    finally:
        server.terminate()
        server.wait(timeout=30)

    print(f"clip: {clip.name}, {info.width}x{info.height} {info.codec}, {info.num_frames} frames at {info.fps:.0f} fps, "
          f"{clip.stat().st_size / 1e6:.1f} MB")
    print(f"start-up to serving (python app.py -> client connected): {startup:.1f} s")
    print(f"top-1: {result['label']}\n")
    print("| run | /classify end-to-end (s) |\n|---:|---:|")
    for i, t in enumerate(times, 1):
        print(f"| {i} | {t:.2f} |")
    print(f"| median | {statistics.median(times):.2f} |\n| max | {max(times):.2f} |")
    print(f"\ngoal <= 2 s: {'met' if statistics.median(times) <= 2 else 'NOT met'} (median)")


if __name__ == "__main__":
    main()
