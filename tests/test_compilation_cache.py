"""JAX's persistent compilation cache: on by default, reused by a second process, opt-out."""

from __future__ import annotations

import os
import subprocess
import sys
from types import SimpleNamespace

from gmmscape._compilation_cache import ENV_DIR, ENV_SWITCH, enable_compilation_cache

FIT = (
    "import gmmscape, jax, numpy as np; "
    "X = np.random.default_rng(0).standard_normal((64, 2)); "
    "gmmscape.GaussianMixture(2, covariance_type='diag', random_state=0).fit(X); "
    "print(jax.config.jax_compilation_cache_dir)"
)


#: Only the import: where the cache points, without compiling anything.
IMPORT = "import gmmscape, jax; print(jax.config.jax_compilation_cache_dir)"


def _run(env_extra, code=FIT):
    env = {k: v for k, v in os.environ.items() if k not in (ENV_DIR, ENV_SWITCH)}
    env.update(env_extra)
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return out.stdout.strip().splitlines()[-1]


def test_second_process_loads_every_program_from_the_cache(tmp_path):
    cache = tmp_path / "cache"
    assert _run({ENV_DIR: str(cache)}) == str(cache)
    first = sorted(p.name for p in cache.rglob("*") if p.is_file())
    assert first  # the fit's programs were written
    _run({ENV_DIR: str(cache)})
    # every program the second fit needed was found: nothing new was compiled and written
    assert sorted(p.name for p in cache.rglob("*") if p.is_file()) == first


def test_cache_can_be_switched_off(tmp_path):
    assert _run({ENV_SWITCH: "0", ENV_DIR: str(tmp_path / "c")}, IMPORT) == "None"
    assert not (tmp_path / "c").exists()


def test_a_directory_the_user_chose_is_kept(tmp_path):
    updates = {}
    cfg = SimpleNamespace(jax_compilation_cache_dir=str(tmp_path), update=updates.__setitem__)
    assert enable_compilation_cache(SimpleNamespace(config=cfg)) == str(tmp_path)
    assert updates == {}


def test_cache_writes_are_atomic_a_reader_never_sees_a_partial_entry(tmp_path):
    # JAX's own put writes the file in place: a reader polling meanwhile sees it grow
    # (and deserializing such a file crashes). With gmmscape's patch every entry a
    # reader finds is whole, and no temporary file is left behind.
    import threading

    from jax._src import lru_cache

    import gmmscape  # noqa: F401  (installs the patch)

    assert getattr(lru_cache.LRUCache.put, "_gmmscape_atomic", False)
    cache = lru_cache.LRUCache(str(tmp_path), max_size=-1)
    value = bytes(range(256)) * (1 << 17)  # 32 MiB
    sizes, stop = set(), threading.Event()

    def poll():
        while not stop.is_set():
            for p in tmp_path.glob("*-cache"):
                try:
                    sizes.add(len(p.read_bytes()))
                except FileNotFoundError:
                    pass

    reader = threading.Thread(target=poll)
    reader.start()
    try:
        for i in range(6):
            cache.put(f"key{i}", value)
    finally:
        stop.set()
        reader.join()
    assert sizes <= {len(value)}
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"key{i}-cache" for i in range(6)]
    assert cache.get("key3") == value
    cache.put("key3", b"other")  # an existing entry is kept, as JAX's put does
    assert cache.get("key3") == value


def test_a_failed_cache_write_leaves_no_file(tmp_path, monkeypatch):
    from jax._src import lru_cache

    import gmmscape  # noqa: F401

    def fail(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    lru_cache.LRUCache(str(tmp_path), max_size=-1).put("key", b"x" * 1000)
    assert list(tmp_path.iterdir()) == []  # no partial entry: compiled again next time


def test_atomic_writes_are_installed_before_jax_is_imported():
    code = (
        "import sys, gmmscape; assert 'jax' not in sys.modules; "
        "from jax._src import lru_cache; print(lru_cache.LRUCache.put._gmmscape_atomic)"
    )
    assert _run({}, code) == "True"
