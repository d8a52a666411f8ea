"""User-facing errors of the analysis tools (bad method, index, clip or option): one line each."""

from posmlp_video.errors import PosMLPError


class AnalysisError(PosMLPError):
    """A request the analysis tools cannot serve: unknown method, bad stage/block/unit, bad clip."""
