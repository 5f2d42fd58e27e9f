"""Test configuration: precision is set once here (gmmscape also enables x64 on import)."""

import jax

jax.config.update("jax_enable_x64", True)
