"""Analysis tools for PosMLP-Video: learned relative-position-bias tables, their statistics and figures,
Captum attributions for video clips, overlays, the pointing game and per-stage complexity.

Every function the app and the notebooks need is one call from here.
"""

from analysis.biases import (
    BiasTable,
    compare_biases,
    gating_units,
    get_table,
    relative_position_biases,
    select,
    unit_table,
)
from analysis.errors import AnalysisError
from analysis.stats import SUMMARY_COLUMNS, TableStats, format_summary, summary, table_stats

__all__ = [
    "AnalysisError", "BiasTable", "SUMMARY_COLUMNS", "TableStats", "compare_biases", "format_summary",
    "gating_units", "get_table", "relative_position_biases", "select", "summary", "table_stats", "unit_table",
]
