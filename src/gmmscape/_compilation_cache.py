"""JAX's persistent compilation cache, on by default for gmmscape.

gmmscape compiles one program per shape it sees (covariance type, number of components,
row bucket, ...), which costs seconds of CPU in every new process. With JAX's persistent
compilation cache, a second process loads those programs from disk instead. Importing
gmmscape turns it on, unless:

* ``GMMSCAPE_COMPILATION_CACHE=0`` (or ``false``, ``no``, ``off``) is set: no cache;
* the process already set ``jax_compilation_cache_dir`` itself: that choice is kept and
  nothing else is changed.

The directory is ``GMMSCAPE_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/gmmscape/jax``
(default ``~/.cache/gmmscape/jax``); programs of any compile time are cached, up to
:data:`MAX_CACHE_BYTES` on disk (JAX evicts the least recently used beyond that, using
the ``filelock`` package). Deleting the directory is always safe. These
are process-wide JAX settings (as ``jax_enable_x64``); docs/numerics.md says so.
"""

from __future__ import annotations

import os
from pathlib import Path

#: Environment variable that turns the cache off when set to 0 / false / no / off.
ENV_SWITCH = "GMMSCAPE_COMPILATION_CACHE"
#: Environment variable naming the cache directory.
ENV_DIR = "GMMSCAPE_CACHE_DIR"
#: Largest size of the cache directory, in bytes.
MAX_CACHE_BYTES = 2 * 1024**3


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/gmmscape/jax``, or ``~/.cache/gmmscape/jax``.

    Returns
    -------
    pathlib.Path
    """
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gmmscape" / "jax"


def enable_compilation_cache(jax_module) -> str | None:
    """Point JAX's persistent compilation cache at gmmscape's directory (see module doc).

    Parameters
    ----------
    jax_module : module
        The imported ``jax``.

    Returns
    -------
    str or None
        The cache directory in use, or None when the cache is off (switched off, or the
        directory cannot be created).
    """
    if os.environ.get(ENV_SWITCH, "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    cfg = jax_module.config
    if cfg.jax_compilation_cache_dir:
        return str(cfg.jax_compilation_cache_dir)
    path = Path(os.environ.get(ENV_DIR) or default_cache_dir()).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    cfg.update("jax_compilation_cache_dir", str(path))
    cfg.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    cfg.update("jax_compilation_cache_max_size", MAX_CACHE_BYTES)
    return str(path)
