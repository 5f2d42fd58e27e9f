"""The store of exported programs (gmmscape._program_store): results equal to plain
``jax.jit`` and to NumPy, and a missing, corrupt, mismatched or stale entry falls back.

References: NumPy for the toy program; a fit in a process with the store off
(``GMMSCAPE_PROGRAM_STORE=0``, plain ``jax.jit``) for the estimator.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gmmscape import _program_store as ps
from gmmscape._compilation_cache import ENV_DIR


def _toy(x, w, *, power):
    return {"s": jnp.sum(w[:, None] * x**power, axis=0), "m": jnp.max(x)}


def _reference(x, w, power):
    return {"s": (w[:, None] * x**power).sum(0), "m": x.max()}


@pytest.fixture
def store(tmp_path, monkeypatch):
    folder = tmp_path / "exported"
    monkeypatch.setattr(ps, "store_dir", lambda: folder)
    if not ps._can_serialize():
        pytest.skip("jax.export serialization needs the flatbuffers package")
    return folder


def _data(n=7):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 3)), rng.uniform(size=n)


def _check(out, x, w, power):
    ref = _reference(x, w, power)
    np.testing.assert_allclose(np.asarray(out["s"]), ref["s"], rtol=1e-13)
    assert float(out["m"]) == ref["m"]


def test_an_entry_is_written_once_and_loaded_by_a_new_program(store):
    x, w = _data()
    before = dict(ps.counts)
    _check(ps.stored_jit(_toy, static_argnames=("power",))(x, w, power=2), x, w, 2)
    files = sorted(store.glob("*.jaxexp"))
    assert len(files) == 1 and ps.counts["exported"] == before["exported"] + 1
    assert not list(store.glob(".tmp-*"))  # written by rename, nothing half-written left
    fresh = ps.stored_jit(_toy, static_argnames=("power",))  # as a new process would
    _check(fresh(x, w, power=2), x, w, 2)
    assert ps.counts["loaded"] == before["loaded"] + 1
    assert sorted(store.glob("*.jaxexp")) == files
    # other static arguments or shapes are other programs, never the stored one
    _check(fresh(x, w, power=3), x, w, 3)
    x2, w2 = _data(9)
    _check(fresh(x2, w2, power=2), x2, w2, 2)
    assert len(list(store.glob("*.jaxexp"))) == 3


def _salted(x, w, *, salt):
    return {"s": jnp.linalg.cholesky(x.T @ (w[:, None] * x)) + salt, "m": jnp.max(x)}


@pytest.mark.skipif(not ps._can_load_compiled(), reason="compiled copies: CPU backend only")
def test_the_compiled_copy_is_loaded_when_stamped_for_this_machine(store, monkeypatch):
    x, w = _data()
    # a program no earlier run compiled (so JAX's persistent cache cannot hold it: an
    # executable loaded from there is not written, its serialization lacks the code),
    # with a LAPACK call (whose kernels a loaded executable finds initialized)
    salt = float(np.random.default_rng().uniform(1.0, 2.0))
    ref = {"s": np.linalg.cholesky(x.T @ (w[:, None] * x)) + salt, "m": x.max()}

    def call():
        out = ps.stored_jit(_salted, static_argnames=("salt",))(x, w, salt=salt)
        np.testing.assert_allclose(np.asarray(out["s"]), ref["s"], rtol=1e-13)
        assert float(out["m"]) == ref["m"]

    call()
    (exp,) = store.glob("*.jaxexp")
    xla = exp.with_suffix(ps.COMPILED)
    assert xla.is_file()  # written beside the exported program
    before = dict(ps.counts)
    call()  # a new program object, as in a new process: the executable is loaded
    assert ps.counts["compiled"] == before["compiled"] + 1
    good = xla.read_bytes()
    # corrupt, or compiled for another machine (XLA flags, processor): not loaded
    for garbage in (b"", good[:16] + b"garbage", good[:40]):
        xla.write_bytes(garbage)
        before = dict(ps.counts)
        call()
        assert ps.counts["compiled"] == before["compiled"]
    xla.write_bytes(good)
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_enable_fast_math=false")
    before = dict(ps.counts)
    call()
    assert ps.counts["compiled"] == before["compiled"]  # the stamp differs: not loaded


def test_a_corrupt_entry_is_ignored_and_rewritten(store):
    x, w = _data()
    ps.stored_jit(_toy, static_argnames=("power",))(x, w, power=2)
    (path,) = store.glob("*.jaxexp")
    for garbage in (b"", b"not a flatbuffer at all", path.read_bytes()[:50]):
        path.write_bytes(garbage)
        _check(ps.stored_jit(_toy, static_argnames=("power",))(x, w, power=2), x, w, 2)
        assert path.read_bytes() != garbage  # exported again
    from jax import export

    export.deserialize(bytearray(path.read_bytes()))  # a valid entry again


def test_an_entry_for_other_shapes_under_the_name_is_not_used(store):
    x, w = _data()
    prog = ps.stored_jit(_toy, static_argnames=("power",))
    prog(x, w, power=2)
    (path,) = store.glob("*.jaxexp")
    x9, w9 = _data(9)
    other = ps.stored_jit(_toy, static_argnames=("power",))
    other(x9, w9, power=2)
    (path9,) = set(store.glob("*.jaxexp")) - {path}
    path.write_bytes(path9.read_bytes())  # the 9-row program under the 7-row name
    _check(ps.stored_jit(_toy, static_argnames=("power",))(x, w, power=2), x, w, 2)


def test_a_change_of_code_versions_or_settings_is_another_entry(store, monkeypatch):
    x, w = _data()
    prog = ps.stored_jit(_toy, static_argnames=("power",))
    key = (jax.tree_util.tree_structure(((x, w), {})), (((7, 3), "float64", False),), ())
    name = prog.entry_name(key)
    monkeypatch.setattr(ps, "_environment", lambda: "gmmscape edited")
    assert prog.entry_name(key) != name


def test_failures_fall_back_to_plain_jit(store, monkeypatch):
    x, w = _data()

    # a program that cannot be exported (a host callback) runs as jax.jit
    def with_callback(x):
        jax.debug.callback(lambda v: None, x)
        return x * 2

    out = ps.stored_jit(with_callback)(x)
    np.testing.assert_array_equal(np.asarray(out), x * 2)
    # called inside a trace, the plain jitted function is used
    prog = ps.stored_jit(_toy, static_argnames=("power",))
    inner = jax.jit(lambda x, w: prog(x, w, power=2)["s"])(x, w)
    np.testing.assert_allclose(np.asarray(inner), _reference(x, w, 2)["s"], rtol=1e-13)

    # a failed write leaves nothing behind, and the call still answers
    def fail(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(ps.os, "replace", fail)
    _check(ps.stored_jit(_toy, static_argnames=("power",))(x, w, power=4), x, w, 4)
    assert not list(store.glob("*"))  # no entry, no temporary file


def test_switched_off_nothing_is_written(monkeypatch):
    monkeypatch.setenv(ps.ENV_SWITCH, "0")
    assert ps.store_dir() is None
    before = dict(ps.counts)
    x, w = _data()
    _check(ps.stored_jit(_toy, static_argnames=("power",))(x, w, power=2), x, w, 2)
    assert ps.counts == before  # neither loaded nor exported: plain jax.jit


FIT = r"""
import json, jax.monitoring as mon
from gmmscape._program_store import WRAPPER_PREFIX, counts
traced = []
def listen(event, secs, fun_name="", **kw):
    ours = not fun_name.startswith(WRAPPER_PREFIX)
    if event == "/jax/core/compile/jaxpr_trace_duration" and ours:
        traced.append(fun_name)
mon.register_event_duration_secs_listener(listen)
import numpy as np, gmmscape
X = np.random.default_rng(0).standard_normal((80, 2)) + np.repeat([[0, 0], [4, 1]], 40, 0)
gm = gmmscape.GaussianMixture(2, covariance_type="VEV", random_state=0, tol=1e-8).fit(X)
res = gmmscape.select(X, [1, 2, 3], ["VVV", "EEI"])
print(json.dumps({"traced": traced, "counts": counts, "means": gm.means_.tolist(),
                  "ll": gm.score(X), "n_iter": gm.n_iter_, "bic": res.bic.tolist()}))
"""


def _child(env):
    env = {**{k: v for k, v in os.environ.items() if k != ps.ENV_SWITCH}, **env}
    out = subprocess.run([sys.executable, "-c", FIT], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not ps._can_serialize(), reason="needs the flatbuffers package")
def test_a_second_process_traces_none_of_our_functions_and_fits_the_same(tmp_path):
    env = {ENV_DIR: str(tmp_path / "cache")}
    first = _child(env)
    assert first["traced"] and first["counts"]["exported"] >= 4
    second = _child(env)
    assert second["traced"] == [], second["traced"]  # every program came from the store
    assert second["counts"]["loaded"] == first["counts"]["exported"]
    plain = _child({**env, ps.ENV_SWITCH: "0"})  # plain jax.jit, traced afresh
    assert second["counts"]["compiled"] == first["counts"]["exported"]  # no lowering
    assert plain["counts"] == {"loaded": 0, "exported": 0, "fallback": 0, "compiled": 0}
    for run in (first, second):
        np.testing.assert_allclose(run["means"], plain["means"], rtol=1e-12)
        assert run["n_iter"] == plain["n_iter"]
        assert run["ll"] == pytest.approx(plain["ll"], rel=1e-13)
        np.testing.assert_allclose(run["bic"], plain["bic"], rtol=1e-12)


def test_prepared_says_whether_a_call_would_load_a_program(store):
    x, w = _data()
    prog = ps.stored_jit(_toy, static_argnames=("power",))
    assert not prog.prepared(x, w, power=2)
    _check(prog(x, w, power=2), x, w, 2)
    assert prog.prepared(x, w, power=2)
    assert not prog.prepared(x, w, power=3)  # another static argument: another program
    assert not prog.prepared(*_data(9), power=2)  # another shape


def test_load_prepares_without_running_and_threads_load_programs_side_by_side(store, monkeypatch):
    """``load`` prepares a call's program and runs nothing; two threads loading two
    different programs are inside ``_prepare`` at the same time (a lock per program),
    two threads loading the same program prepare it once."""
    import threading
    import time

    x, w = _data()
    runs = []

    def counted(x, w, *, power):
        runs.append(power)  # traced once per export; a run traces nothing
        return _toy(x, w, power=power)

    prog = ps.stored_jit(counted, static_argnames=("power",))
    assert prog.load(x, w, power=2) and prog.prepared(x, w, power=2)
    traced = len(runs)
    _check(prog(x, w, power=2), x, w, 2)
    assert len(runs) == traced  # the call used the loaded program

    inside, most = [0], [0]
    lock = threading.Lock()
    real = ps.StoredProgram._prepare

    def slow(self, *a, **k):
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        time.sleep(0.3)
        try:
            return real(self, *a, **k)
        finally:
            with lock:
                inside[0] -= 1

    monkeypatch.setattr(ps.StoredProgram, "_prepare", slow)
    fresh = ps.stored_jit(_toy, static_argnames=("power",))
    threads = [threading.Thread(target=fresh.load, args=(x, w), kwargs={"power": p})
               for p in (3, 4)]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most[0] == 2  # different programs: prepared side by side
    before = dict(ps.counts)
    same = ps.stored_jit(_toy, static_argnames=("power",))
    threads = [threading.Thread(target=same.load, args=(x, w), kwargs={"power": 3})
               for _ in range(2)]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert ps.counts["loaded"] == before["loaded"] + 1  # the same program: loaded once
    _check(same(x, w, power=3), x, w, 3)
    monkeypatch.setattr(ps, "store_dir", lambda: None)
    assert not ps.stored_jit(_toy, static_argnames=("power",)).load(x, w, power=2)


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="counts Linux's mappings")
def test_release_frees_the_compiled_code_and_calls_load_again(store):
    def maps():
        with open("/proc/self/maps", "rb") as f:
            return sum(1 for _ in f)

    x, w = _data()
    # programs no earlier run compiled, held by the store (compiled copies, on the CPU)
    salts = np.random.default_rng().uniform(1.0, 2.0, 6)
    prog = ps.stored_jit(_salted, static_argnames=("salt",))
    ps.release()
    start = maps()
    for s in salts:
        prog(x, w, salt=float(s))
    held = maps()
    assert held > start and prog.prepared(x, w, salt=float(salts[0]))
    ps.release()
    # the kernels' mappings are gone (other threads may map a little meanwhile)
    assert maps() < start + 0.2 * (held - start)
    assert not prog.prepared(x, w, salt=float(salts[0]))
    before = dict(ps.counts)
    out = prog(x, w, salt=float(salts[0]))  # loaded again from the store
    ref = np.linalg.cholesky(x.T @ (w[:, None] * x)) + salts[0]
    np.testing.assert_allclose(np.asarray(out["s"]), ref, rtol=1e-13)
    assert ps.counts["loaded"] == before["loaded"] + 1
