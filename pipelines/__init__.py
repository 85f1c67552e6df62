"""KFP v2 pipelines and their components. Components only call into vlp.platform and vlp.workloads."""
