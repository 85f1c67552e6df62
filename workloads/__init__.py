"""Everything that runs under torchrun: data, models, objectives, training loops and evaluation."""
