"""Dynamics: run update rules for many steps, vmapped over restarts (jit, scan, while_loop)."""
