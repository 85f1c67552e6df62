"""Model presets as JSON data (open_clip `model_cfg` plus a description)."""
