"""Datasets: procedural generators and readers for shards, CSV/TSV and image folders."""
