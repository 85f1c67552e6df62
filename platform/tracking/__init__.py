"""Experiment tracking on MLflow: runs, a buffered background metric logger, and a no-op tracker for non-zero ranks."""
