"""Experiments built on the core.

Seed A (overparam, trap), the demo tour, the sweep registry and the shared output
writers (JSON, figures, HTML).
"""
