"""JAX's persistent compilation cache, on by default for gmmscape.

gmmscape compiles one program per shape it sees (covariance type, number of components,
row bucket, ...), which costs seconds of CPU in every new process. With JAX's persistent
compilation cache, a second process loads those programs from disk instead. Importing
gmmscape turns it on, unless:

* ``GMMSCAPE_COMPILATION_CACHE=0`` (or ``false``, ``no``, ``off``) is set: no cache;
* the process already set ``jax_compilation_cache_dir`` itself: that choice is kept and
  nothing else is changed.

The directory is ``GMMSCAPE_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/gmmscape/jax``
(default ``~/.cache/gmmscape/jax``); programs of any compile time are cached. JAX does
not evict entries (its size limit needs cross-process locking, and concurrent processes
then race on the access-time files): the directory grows by a few tens of kB per
program, and deleting it is always safe. These
are process-wide JAX settings (as ``jax_enable_x64``); docs/numerics.md says so.
"""

from __future__ import annotations

import os
from pathlib import Path

#: Environment variable that turns the cache off when set to 0 / false / no / off.
ENV_SWITCH = "GMMSCAPE_COMPILATION_CACHE"
#: Environment variable naming the cache directory.
ENV_DIR = "GMMSCAPE_CACHE_DIR"


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/gmmscape/jax``, or ``~/.cache/gmmscape/jax``.

    Returns
    -------
    pathlib.Path
    """
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gmmscape" / "jax"


def _settings(path: Path) -> dict:
    """The JAX settings gmmscape chooses (name -> value); JAX also reads each from the
    environment variable of its name in capitals when it is imported."""
    return {
        "jax_compilation_cache_dir": str(path),
        "jax_persistent_cache_min_compile_time_secs": 0.0,
    }


def enable_compilation_cache(jax_module=None) -> str | None:
    """Point JAX's persistent compilation cache at gmmscape's directory (see module doc).

    If JAX is imported (``jax_module``, or found in ``sys.modules``), its configuration is
    updated at once; otherwise the settings go into the environment variables that JAX
    reads when it is imported (``JAX_COMPILATION_CACHE_DIR``, ...), so ``import gmmscape``
    need not import JAX. A cache directory the user already chose, by the configuration
    or by ``JAX_COMPILATION_CACHE_DIR``, is kept and nothing is changed.

    Parameters
    ----------
    jax_module : module, optional
        The imported ``jax`` (default: ``sys.modules["jax"]`` if JAX is loaded).

    Returns
    -------
    str or None
        The cache directory in use, or None when the cache is off (switched off, or the
        directory cannot be created).
    """
    import sys

    if os.environ.get(ENV_SWITCH, "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    jax = jax_module if jax_module is not None else sys.modules.get("jax")
    cfg = getattr(jax, "config", None)
    chosen = cfg.jax_compilation_cache_dir if cfg is not None else None
    chosen = chosen or os.environ.get("JAX_COMPILATION_CACHE_DIR")
    if chosen:
        return str(chosen)
    path = Path(os.environ.get(ENV_DIR) or default_cache_dir()).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    for name, value in _settings(path).items():
        if cfg is not None:
            cfg.update(name, value)
        else:
            os.environ[name.upper()] = str(value)
    return str(path)
