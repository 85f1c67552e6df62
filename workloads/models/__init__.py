"""CLIP-family models built from presets (architectures as data) on open_clip towers."""
