"""The work of each pipeline step, as plain functions; components.py wraps them for KFP."""
