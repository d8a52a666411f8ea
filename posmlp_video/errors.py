"""User-facing errors: each carries a one-line reason that the CLI, the app and notebooks show as is."""


def one_line(text: str) -> str:
    """``text`` with control characters (newline, carriage return, escape, ...) written as escapes, so it prints
    as one line: a file name may contain any of them, and must not split an error or forge another line."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


class PosMLPError(Exception):
    """Base class for errors caused by user input (bad file, bad checkpoint, bad option), not by bugs.

    Its text is always one line (``one_line``), wherever it is shown: CLI, app, notebook.
    """

    def __str__(self) -> str:
        return one_line(super().__str__())


class CheckpointError(PosMLPError):
    """A checkpoint cannot be read, or does not match the architecture it is loaded into."""


class StorageError(PosMLPError):
    """A file cannot be written (e.g. no space left on device)."""
