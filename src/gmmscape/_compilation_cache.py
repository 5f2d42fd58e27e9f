"""JAX's persistent compilation cache, on by default for gmmscape.

gmmscape compiles one program per shape it sees (covariance type, number of components,
row bucket, ...), which costs seconds of CPU in every new process. With JAX's persistent
compilation cache, a second process loads those programs from disk instead. Importing
gmmscape turns it on, unless:

* ``GMMSCAPE_COMPILATION_CACHE=0`` (or ``false``, ``no``, ``off``) is set: no cache;
* the process already set ``jax_compilation_cache_dir`` itself: that choice is kept and
  only its writes are made atomic (below).

The directory is ``GMMSCAPE_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/gmmscape/jax``
(default ``~/.cache/gmmscape/jax``); programs of any compile time are cached. JAX does
not evict entries (its size limit needs cross-process locking, and concurrent processes
then race on the access-time files): the directory grows by a few tens of kB per
program, and deleting it is always safe.

JAX writes a cache entry in place (``Path.write_bytes``, without a lock when nothing is
evicted), so a second process that loads the same program meanwhile reads a partial
file, and deserializing it crashes that process (a segmentation fault); a process killed
mid-write leaves the partial file for every later one. gmmscape therefore makes the
writes atomic (:func:`atomic_cache_writes`): each entry is written to a temporary file
beside it and renamed into place, so a reader finds the whole entry or none.

These are process-wide JAX settings (as ``jax_enable_x64``); docs/numerics.md says so.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import sys
import threading
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
    or by ``JAX_COMPILATION_CACHE_DIR``, is kept (its writes are made atomic all the
    same, :func:`atomic_cache_writes`).

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
        atomic_cache_writes()
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
    atomic_cache_writes()
    return str(path)


#: The JAX module whose cache writes :func:`atomic_cache_writes` makes atomic.
_LRU_MODULE = "jax._src.lru_cache"


def _make_put_atomic(module) -> bool:
    """Replace ``module.LRUCache.put`` by an atomic write (see :func:`atomic_cache_writes`)."""
    cls = getattr(module, "LRUCache", None)
    put = getattr(cls, "put", None)
    suffix = getattr(module, "_CACHE_SUFFIX", None)
    if put is None or suffix is None:
        return False  # another JAX: leave it as it is
    if getattr(put, "_gmmscape_atomic", False):
        return True

    def put_atomic(self, key, value):
        path = getattr(self, "path", None)
        if not key or getattr(self, "eviction_enabled", True) or "://" in str(path):
            return put(self, key, value)  # JAX locks these itself, or not a local folder
        final = Path(os.fspath(path)) / f"{key}{suffix}"
        if final.exists():
            return None
        tmp = final.with_name(f".{final.name}.{os.getpid()}-{threading.get_ident()}.tmp")
        try:
            tmp.write_bytes(value)
            os.replace(tmp, final)
        except OSError:
            tmp.unlink(missing_ok=True)  # a cache entry not written: compiled again later
        return None

    put_atomic._gmmscape_atomic = True
    put_atomic.__doc__ = put.__doc__
    cls.put = put_atomic
    return True


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Applies :func:`_make_put_atomic` as soon as JAX imports its cache module."""

    def find_spec(self, name, path, target=None):
        if name != _LRU_MODULE:
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)  # once; and the lookup below must not find us
        spec = importlib.util.find_spec(name)
        loader = getattr(spec, "loader", None)
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        exec_module = loader.exec_module

        def exec_and_patch(module):
            exec_module(module)
            _make_put_atomic(module)

        loader.exec_module = exec_and_patch
        return spec


def atomic_cache_writes() -> bool:
    """Make the persistent cache's writes atomic, now or when JAX loads its cache code.

    Each entry is written to a temporary file in the cache folder and renamed into place
    (``os.replace``), so that concurrent processes (parallel jobs, a sweep's workers,
    cross-validation in processes) never read a partial entry, and a killed process
    leaves none. Cache folders JAX locks itself (a size limit) and remote ones are left
    to JAX.

    Returns
    -------
    bool
        True when the writes are (or will be, once JAX is imported) atomic; False when
        this JAX has no cache code of the expected shape (nothing is changed then).
    """
    module = sys.modules.get(_LRU_MODULE)
    if module is not None:
        return _make_put_atomic(module)
    if not any(isinstance(f, _PatchOnImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _PatchOnImport())
    return True
