"""Evaluation: zero-shot classification, retrieval, linear probe, zero-shot segmentation, modality gap and
per-domain accuracy on any model and dataset, with results in CLIP_benchmark's layout and plots."""
