"""Training objectives as small nn.Modules."""
