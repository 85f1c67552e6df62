"""Training loops and their parts (optimizer, schedule, checkpoints); `main` is the torchrun entry point."""
