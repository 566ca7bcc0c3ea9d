"""Reports of search runs: a markdown results table and PNG plots."""

from equinas.report.run_report import comparison_plot, write_report
from equinas.report.tables import candidates_table, comparison_table

__all__ = ["candidates_table", "comparison_plot", "comparison_table", "write_report"]
