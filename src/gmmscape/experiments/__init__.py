"""Experiments built on the core: the demo (seed A and seed B studies come later)."""
