"""Compiled programs loaded without tracing: a store of exported StableHLO beside the cache.

JAX's persistent compilation cache (:mod:`gmmscape._compilation_cache`) skips the XLA
compile in a new process, but each program must still be traced (our Python run on
abstract values) and lowered to StableHLO before its cache key is known: on small data
that costs several times the EM itself. :func:`stored_jit` wraps a function like
``jax.jit`` and, the first time a process calls it with given static arguments and
argument shapes, looks for the program's serialized :class:`jax.export.Exported` in the
store; found, the program is ``jax.jit(exported.call)``, which only wraps the stored
module (no tracing of our code) and then loads from the compilation cache as before.
Not found, the function is exported once, written to the store and called the same way.

On the CPU, beside each exported program the store keeps its compiled executable
(``.xla``, written with :mod:`jax.experimental.serialize_executable` when XLA compiles
the program), stamped with what it was compiled for: XLA's flags, the backend's version
and the processor's instruction-set extensions (:func:`_machine`). Found and stamped for
this machine, it is loaded directly, which skips the lowering of the stored module and
the hashing that a persistent-cache lookup needs (tens of milliseconds a program; a
model selection loads 4 to 28 programs); otherwise the program loads as above.

An entry is named by a hash of everything that determines the program: the function,
its static arguments, the argument tree, shapes, dtypes and weak types, the platform,
the jax and jaxlib versions, the relevant JAX settings (``jax_enable_x64``, ...) and the
content of gmmscape's source files. So a stale entry cannot be found, and a corrupt or
mismatched one (unreadable bytes, other shapes or platform) is ignored and rewritten:
the call then traces as ``jax.jit`` does and gives the same result. Entries are written
to a temporary file and renamed, so a reader never sees half a file. Any failure (no
``flatbuffers`` package, which JAX's serialization needs; a read-only directory; a
program that cannot be exported, such as one with host callbacks) falls back silently
to plain ``jax.jit``.

The store is the ``exported`` folder of the compilation cache directory; it is off when
the cache is off, or when ``GMMSCAPE_PROGRAM_STORE=0`` (or false / no / off). Deleting it
is always safe.
"""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
import threading
import weakref
from pathlib import Path

import jax

#: Environment variable that turns the store off when set to 0 / false / no / off.
ENV_SWITCH = "GMMSCAPE_PROGRAM_STORE"
#: Subfolder of the compilation cache directory that holds the exported programs.
FOLDER = "exported"
#: Suffix of an entry's compiled executable (beside its exported program), stamped with
#: the machine it was compiled for (:func:`_machine`).
COMPILED = ".xla"
#: Name prefix of the thin programs that call a stored one (what JAX's trace events and
#: ``jax_log_compiles`` show for them).
WRAPPER_PREFIX = "stored_"
#: JAX settings that change what a traced program computes.
_CONFIG = (
    "jax_enable_x64",
    "jax_default_matmul_precision",
    "jax_numpy_rank_promotion",
    "jax_numpy_dtype_promotion",
    "jax_default_prng_impl",
    "jax_threefry_partitionable",
)

#: Statistics of this process: entries loaded, exported (and written), fallbacks, and
#: executables loaded from the store's compiled copies (:data:`COMPILED`).
counts = {"loaded": 0, "exported": 0, "fallback": 0, "compiled": 0}


def _off(value: str | None) -> bool:
    return (value or "").strip().lower() in ("0", "false", "no", "off")


def store_dir() -> Path | None:
    """The folder of exported programs, or None when the store is off.

    Returns
    -------
    pathlib.Path or None
        ``<jax_compilation_cache_dir>/exported`` (see :mod:`gmmscape._compilation_cache`).
    """
    if _off(os.environ.get(ENV_SWITCH)):
        return None
    cache = jax.config.jax_compilation_cache_dir
    if not cache:
        return None
    return Path(cache) / FOLDER


#: NamedTuple types that programs take or return (:func:`register_types`).
_TYPES: list = []


def register_types(*types) -> None:
    """Declare the NamedTuple pytrees that stored programs take or return, so that their
    trees can be serialized (``jax.export.register_namedtuple_serialization``).

    Parameters
    ----------
    *types : NamedTuple classes
    """
    _TYPES.extend(t for t in types if t not in _TYPES)
    if _can_serialize():
        _register_pending()


_REGISTERED: set = set()


def _register_pending() -> None:
    from jax import export

    for t in _TYPES:
        if t in _REGISTERED:
            continue
        try:
            name = f"{t.__module__}.{t.__qualname__}"
            export.register_namedtuple_serialization(t, serialized_name=name)
        except ValueError:  # registered already
            pass
        _REGISTERED.add(t)


@functools.cache
def _can_serialize() -> bool:
    try:
        import flatbuffers  # noqa: F401  (what jax.export's serialization needs)
        from jax import export  # noqa: F401
    except ImportError:
        return False
    _register_pending()
    return True


@functools.cache
def _environment() -> str:
    """What every entry's name depends on besides the call: versions, settings, code."""
    import jaxlib

    h = hashlib.blake2b(digest_size=16)
    root = Path(__file__).resolve().parent
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    settings = [(name, str(getattr(jax.config, name, None))) for name in _CONFIG]
    return repr(
        (jax.__version__, jaxlib.__version__, jax.default_backend(), settings, h.hexdigest())
    )


def _aval(x) -> tuple:
    a = jax.typeof(x)
    return (tuple(a.shape), str(a.dtype), bool(getattr(a, "weak_type", False)))


#: Every stored function of this process (:func:`release`).
_INSTANCES: weakref.WeakSet = weakref.WeakSet()


def release() -> None:
    """Drop the programs this process holds for every stored function, with JAX's own
    caches (``jax.clear_caches``), so that their compiled code is freed; the store's
    files stay, and the next call of a program loads it again.

    A long process that compiles many programs holds memory mappings for each kernel
    (XLA's CPU backend maps every kernel's code and data separately), and Linux caps
    them per process (``vm.max_map_count``, 65530 by default): past that cap the next
    compile cannot map its code and the process dies.
    """
    jax.clear_caches()
    for program in list(_INSTANCES):
        with program._lock:
            program._calls.clear()
            program._key_locks.clear()


class StoredProgram:
    """A function compiled like ``jax.jit(fn, static_argnames=...)``, whose programs are
    loaded from the store when it has them (see the module doc).

    Parameters
    ----------
    fn : callable
        A pure function of arrays (and the static arguments, passed by keyword).
    static_argnames : tuple of str
        Arguments compiled into the program (hashable), passed by keyword.
    """

    def __init__(self, fn, static_argnames=()):
        self._fn = fn
        self._static = tuple(static_argnames)
        self._jit = jax.jit(fn, static_argnames=self._static)
        self._calls: dict = {}
        # threads that call a new program prepare it once; threads that call different
        # new programs prepare them side by side (a lock per program)
        self._lock = threading.Lock()
        self._key_locks: dict = {}
        functools.update_wrapper(self, fn)
        _INSTANCES.add(self)

    def __getattr__(self, name):  # lower, trace, ... of the jitted function
        return getattr(self._jit, name)

    def _cache_size(self) -> int:
        """Programs this process holds for the function (stored and plainly jitted)."""
        return len(self._calls) + self._jit._cache_size()

    def _key(self, args, kwargs):
        leaves, tree = jax.tree_util.tree_flatten((args, {
            k: v for k, v in kwargs.items() if k not in self._static
        }))  # fmt: skip
        static = tuple(sorted((k, v) for k, v in kwargs.items() if k in self._static))
        return leaves, tree, (tree, tuple(_aval(x) for x in leaves), static)

    def prepared(self, *args, **kwargs) -> bool:
        """Whether this process already holds the stored program of this call (loaded
        from the store or exported, then run): calling it again loads nothing.

        Parameters
        ----------
        *args, **kwargs
            As for a call.

        Returns
        -------
        bool
        """
        return bool(self._calls.get(self._key(args, kwargs)[2]))

    def _call_of(self, args, kwargs):
        """``(leaves, call)``: the call's flat arguments and its prepared program, None
        where the call goes to plain ``jax.jit`` (no store, traced arguments) and False
        where the program cannot be stored."""
        folder = store_dir()
        leaves, tree, key = self._key(args, kwargs)
        if (
            folder is None
            or any(isinstance(x, jax.core.Tracer) for x in leaves)
            or not _can_serialize()
        ):
            return leaves, None
        call = self._calls.get(key)
        if call is None:
            with self._lock:
                lock = self._key_locks.setdefault(key, threading.Lock())
            with lock:
                call = self._calls.get(key)
                if call is None:
                    call = self._calls[key] = self._prepare(folder, key, args, kwargs, tree)
        return leaves, call

    def load(self, *args, **kwargs) -> bool:
        """Prepare the program of this call (load it from the store, or export and
        compile it) without running it.

        Parameters
        ----------
        *args, **kwargs
            As for a call (only their shapes, dtypes and the static arguments count).

        Returns
        -------
        bool
            Whether the program is now held (False: the call goes to plain ``jax.jit``,
            which compiles when it is first run).
        """
        return bool(self._call_of(args, kwargs)[1])

    def __call__(self, *args, **kwargs):
        leaves, call = self._call_of(args, kwargs)
        if not call:
            return self._jit(*args, **kwargs)
        return call(*leaves)

    def entry_name(self, key) -> str:
        """The file name of the program for ``key`` (tree, avals, static arguments)."""
        tree, avals, static = key
        fn = f"{self._fn.__module__}.{self._fn.__qualname__}"
        text = repr((fn, str(tree), avals, static, _environment()))
        return hashlib.blake2b(text.encode(), digest_size=20).hexdigest() + ".jaxexp"

    def _prepare(self, folder: Path, key, args, kwargs, tree):
        """``jax.jit(exported.call)`` for ``key``, loaded or exported now; False if the
        program cannot be stored (the call then goes to plain ``jax.jit``)."""
        from jax import export

        path = folder / self.entry_name(key)
        exp = _read(path, key[1])
        if exp is not None:
            counts["loaded"] += 1
        else:
            static = dict(key[2])

            def flat(*leaves):
                a, kw = jax.tree_util.tree_unflatten(tree, leaves)
                return self._fn(*a, **kw, **static)

            flat.__name__ = flat.__qualname__ = self._fn.__name__

            leaves = jax.tree_util.tree_leaves((args, {
                k: v for k, v in kwargs.items() if k not in self._static
            }))  # fmt: skip
            try:
                exp = export.export(jax.jit(flat))(*leaves)  # for the default platform
                blob = exp.serialize()
            except Exception:  # host callbacks, effects, ...: plain jit
                counts["fallback"] += 1
                return False
            _write(path, blob)
            counts["exported"] += 1

        def run(*leaves):  # traced in a blink: it only wraps the stored module
            return exp.call(*leaves)

        run.__name__ = run.__qualname__ = WRAPPER_PREFIX + self._fn.__name__
        return _compiled(path.with_suffix(COMPILED), jax.jit(run), exp, key[1])


@functools.cache
def _processor() -> str:
    """This processor's architecture and instruction-set extensions (Linux's
    ``/proc/cpuinfo`` flags; elsewhere the architecture and processor name)."""
    import platform

    flags = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), flags)
    except OSError:
        pass
    return repr((platform.machine(), flags))


def _machine() -> str:
    """What a compiled executable depends on beyond :func:`_environment`: XLA's flags,
    the backend's version and the processor."""
    backend = jax.devices()[0].client
    return repr((os.environ.get("XLA_FLAGS", ""), backend.platform_version, _processor()))


@functools.cache
def _can_load_compiled() -> bool:
    """Whether executables may be loaded without lowering: on the CPU backend, once the
    LAPACK kernels that their custom calls name are initialized (JAX does that while
    lowering a linear-algebra operation, which a loaded executable skips)."""
    if jax.default_backend() != "cpu":
        return False
    try:
        import numpy as np
        from jax.experimental import serialize_executable  # noqa: F401
        from jaxlib import lapack

        lapack.prepare_lapack_call("potrf_ffi", np.dtype(np.float64))
    except Exception:
        return False
    return True


def _compiled(path: Path, jitted, exp, avals):
    """The executable of ``jitted`` (``jax.jit`` of a stored program): loaded from
    ``path`` (:func:`jax.experimental.serialize_executable.deserialize_and_load`), which
    skips the lowering that a persistent-cache lookup needs, or compiled now and, where
    XLA compiled it (not loaded from JAX's persistent cache, whose executables serialize
    without their code), written there. ``jitted`` itself where executables cannot be
    loaded so (:func:`_can_load_compiled`) or compiled ahead of the call."""
    if not _can_load_compiled():
        return jitted
    from jax.experimental import serialize_executable as se

    leaves = [jax.ShapeDtypeStruct(shape, dtype, weak_type=weak) for shape, dtype, weak in avals]
    in_tree = jax.tree_util.tree_structure((tuple(leaves), {}))
    stamp = hashlib.blake2b(_machine().encode(), digest_size=16).hexdigest().encode()
    try:
        blob = path.read_bytes()
        if blob.startswith(stamp):
            compiled = se.deserialize_and_load(blob[len(stamp) :], in_tree, exp.out_tree)
            counts["compiled"] += 1
            return compiled
    except OSError:
        pass
    except Exception:  # a corrupt entry: compile, and write it again
        counts["fallback"] += 1
    _listen()
    _local.hit = False
    try:
        compiled = jitted.lower(*leaves).compile()
    except Exception:  # the jitted wrapper, as before
        return jitted
    if _local.hit:  # loaded from JAX's cache: its serialization would lack the code
        return compiled
    try:
        blob = se.serialize(compiled)[0]
    except Exception:  # not serializable here
        return compiled
    if b"\x7fELF" not in blob:  # no object code in it: never written
        return compiled
    _write(path, stamp + blob)
    return compiled


_local = threading.local()


@functools.cache
def _listen() -> None:
    """Note in :data:`_local` when this thread's compile loads from JAX's cache."""

    def hit(event, **kwargs):
        if event == "/jax/compilation_cache/cache_hits":
            _local.hit = True

    jax.monitoring.register_event_listener(hit)


def _read(path: Path, avals):
    """The exported program stored at ``path`` if it is readable and takes ``avals``."""
    from jax import export

    try:
        blob = path.read_bytes()
    except OSError:
        return None
    try:
        exp = export.deserialize(bytearray(blob))
        got = tuple((tuple(a.shape), str(a.dtype)) for a in exp.in_avals)
        if got != tuple((shape, dtype) for shape, dtype, _ in avals):
            return None
        if export.default_export_platform() not in exp.platforms:
            return None
    except Exception:  # a corrupt entry of any kind: export again
        counts["fallback"] += 1
        return None
    return exp


def _write(path: Path, blob: bytes) -> None:
    """Write ``blob`` to ``path`` atomically (a temporary file renamed); failures are
    ignored (the store is an optimization)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(blob)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError:
        pass


def stored_jit(fn=None, *, static_argnames=()):
    """Decorator: ``jax.jit`` whose programs are kept in the store (module doc).

    Parameters
    ----------
    fn : callable, optional
    static_argnames : tuple of str

    Returns
    -------
    StoredProgram, or a decorator making one
    """
    if fn is None:
        return functools.partial(stored_jit, static_argnames=static_argnames)
    return StoredProgram(fn, static_argnames)
