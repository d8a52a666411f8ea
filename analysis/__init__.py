"""Analysis tools for PosMLP-Video: learned relative-position-bias tables, their statistics and figures,
Captum attributions for video clips, overlays, the pointing game and per-stage complexity.

Every function the app and the notebooks need is one call from here; figures live in `analysis.plots`
(matplotlib) and `analysis.interactive` (plotly): import those modules for figures.
"""

from analysis.attributions import BASELINES, METHODS, Attribution, attribute
from analysis.biases import (
    BiasTable,
    compare_biases,
    gating_units,
    get_table,
    relative_position_biases,
    select,
    unit_table,
)
from analysis.complexity import complexity_table, format_complexity
from analysis.errors import AnalysisError
from analysis.mixing import MixingRow, mixing_row, model_mixing_row
from analysis.overlays import colorize, frame_strip, normalize_map, overlay, overlay_video
from analysis.pointing import PointingReport, align_mask, pointing_game, pointing_game_report
from analysis.stats import SUMMARY_COLUMNS, TableStats, format_summary, summary, table_stats

__all__ = [
    "AnalysisError", "Attribution", "BASELINES", "BiasTable", "METHODS", "MixingRow", "PointingReport", "SUMMARY_COLUMNS",
    "TableStats", "align_mask", "attribute", "colorize", "compare_biases", "complexity_table",
    "format_complexity", "format_summary", "frame_strip", "gating_units", "get_table", "mixing_row",
    "model_mixing_row", "normalize_map",
    "overlay", "overlay_video", "pointing_game", "pointing_game_report", "relative_position_biases", "select",
    "summary", "table_stats", "unit_table",
]
