"""Command line: ``python -m posmlp_video COMMAND ...`` (also installed as ``posmlp-video``).

Each command lives in its own module exposing ``add_arguments(parser)`` and ``run(args) -> int``; only the
chosen command's module is imported, so ``--help`` and quick commands stay fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "convert": ("posmlp_video.checkpoint", "convert an authors' PosMLP-Video checkpoint to our safetensors format"),
    "predict": ("posmlp_video.predict", "classify video files with a checkpoint (top-k classes, --json lines)"),
    "train": ("posmlp_video.train.command", "train or fine-tune from a YAML recipe (resumes; runs under torchrun)"),
    "eval": ("posmlp_video.evaluate", "top-1/top-5, per-class accuracy and confusion matrix of a checkpoint"),
    "export": ("posmlp_video.export", "export a checkpoint to ONNX or torch.export, checked against PyTorch"),
    "check-videos": ("posmlp_video.check_videos", "list the videos of a dataset that fail to decode or are too short"),
    "card": ("posmlp_video.card", "print a checkpoint's model card (Markdown, from its metadata)"),
    "timeline": ("posmlp_video.timeline", "slide the model over a long video: per-window probabilities, plot, segments"),
    "features": ("posmlp_video.features", "features of videos (a stage's output, pooled, or the head's input) to .npy"),
    "assets": ("posmlp_video.assets", "fetch the pinned Debian packages of photos, cut-outs and footage into the cache"),
}
# commands that run the model step after step: run as a program (not as main([...]) inside another one), they keep
# freed activations for reuse (posmlp_video.allocator)
RUNS_THE_MODEL = {"predict", "train", "eval", "export", "timeline", "features"}


def _top_parser() -> argparse.ArgumentParser:
    lines = "\n".join(f"  {name:<10} {help_}" for name, (_, help_) in COMMANDS.items())
    return argparse.ArgumentParser(
        prog="posmlp-video",
        description="PosMLP-Video command line.",
        epilog="commands:\n" + lines + "\n\nRun 'posmlp-video COMMAND --help' for a command's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def main(argv: list[str] | None = None) -> int:
    """Dispatch to a command; user errors print one line to stderr (exit 1), usage errors exit 2."""
    from posmlp_video.errors import PosMLPError

    as_program = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        parser = _top_parser()
        if argv and argv[0] not in ("-h", "--help"):
            parser.print_usage(sys.stderr)
            print(f"posmlp-video: error: unknown command {argv[0]!r} (choose from {', '.join(COMMANDS)})",
                  file=sys.stderr)
            return 2
        parser.print_help()
        return 0 if argv else 2
    name = argv[0]
    if name in RUNS_THE_MODEL and as_program:
        from posmlp_video.allocator import keep_freed_memory

        keep_freed_memory()
    module = importlib.import_module(COMMANDS[name][0])
    parser = argparse.ArgumentParser(prog=f"posmlp-video {name}", description=COMMANDS[name][1])
    module.add_arguments(parser)
    args = parser.parse_args(argv[1:])
    try:
        return int(module.run(args) or 0)
    except PosMLPError as err:
        print(f"posmlp-video {name}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"posmlp-video {name}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into e.g. `head`, which closed early: not an error worth a traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
