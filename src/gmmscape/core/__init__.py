"""The core layer: mixtures, statistics, update rules, frames, quadrature and sources."""
