"""User-facing errors: each carries a one-line reason that the CLI, the app and notebooks show as is."""


class PosMLPError(Exception):
    """Base class for errors caused by user input (bad file, bad checkpoint, bad option), not by bugs."""


class CheckpointError(PosMLPError):
    """A checkpoint cannot be read, or does not match the architecture it is loaded into."""


class StorageError(PosMLPError):
    """A file cannot be written (e.g. no space left on device)."""
