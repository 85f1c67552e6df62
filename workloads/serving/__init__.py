"""Serving trained models through MLflow pyfunc."""
