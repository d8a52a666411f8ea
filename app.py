"""Start the PosMLP-Video web app: ``python app.py [--checkpoint PATH] [--checkpoint-dir DIR] [--host H] [--port P]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from posmlp_video.errors import PosMLPError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split(":")[0])
    parser.add_argument("--checkpoint", type=Path, help="checkpoint to serve (default: the bundled SynthMotion model)")
    parser.add_argument("--checkpoint-dir", type=Path, help="folder whose checkpoints the browser may pick")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    parser.add_argument("--max-upload-mb", type=int, default=None,
                        help="largest upload (clip or checkpoint) in MiB (default 512)")
    args = parser.parse_args(argv)

    from demo import build_app, launch

    try:
        app = build_app(args.checkpoint, args.checkpoint_dir)
    except PosMLPError as err:
        print(f"app.py: error: {err}", file=sys.stderr)
        return 2
    launch(app, args.host, args.port, **({"max_file_size": args.max_upload_mb << 20} if args.max_upload_mb else {}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
