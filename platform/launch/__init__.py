"""Launching distributed workloads with TorchX."""
