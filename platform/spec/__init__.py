"""The experiment spec: pydantic models for every section of an experiment file, and how to load one."""

from vlp.platform.spec.experiment import ExperimentSpec
from vlp.platform.spec.loading import load_spec, spec_from_dict

__all__ = ["ExperimentSpec", "load_spec", "spec_from_dict"]
