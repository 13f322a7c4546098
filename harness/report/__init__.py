"""The HTML report, run comparison (``harness diff``) and JUnit XML of a run directory."""

from harness.report.render import REPORT_FILE, write_report

__all__ = ["REPORT_FILE", "write_report"]
