"""Evaluation tasks: zero-shot classification and image-text retrieval."""
