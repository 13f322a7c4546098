"""Names the pytest plugin's modules share (importing this imports nothing else)."""

PLUGIN_NAME = "harness-review"
"""Name of the active review plugin object in pytest's plugin manager."""
