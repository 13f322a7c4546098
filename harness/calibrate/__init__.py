"""Calibration against human labels: how often a run's verdicts agree with people.

``harness calibrate RUN_DIR --labels FILE`` (see :mod:`harness.calibrate.plugin`); the metrics
are pure functions in :mod:`harness.calibrate.metrics`.
"""

from harness.calibrate.compare import CALIBRATION_FILE, DECISION, calibrate
from harness.calibrate.labels import Label, parse_map, read_labels

__all__ = ["CALIBRATION_FILE", "DECISION", "Label", "calibrate", "parse_map", "read_labels"]
