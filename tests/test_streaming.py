"""Data from disk: memory-mapped arrays and iterables of mini-batches in fit/predict."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import gdcore as gd
from gdcore import network

ROOT = Path(__file__).parent.parent


def _data(dtype, n=203, n_in=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_in)).astype(dtype)
    T = (X[:, 0] + X[:, 1] > 0).astype(np.int64) + (X[:, 2] > 0.7)
    return X, T


def _memmap(tmp_path, A, name):
    path = tmp_path / f"{name}.npy"
    np.save(path, A)
    return np.load(path, mmap_mode="r")


def _net(dtype, dropout=None):
    return gd.MLP([6, 9, 3], activation="tanh", dtype=dtype, seed=1, dropout=dropout)


def _batches(X, T, B):
    for start in range(0, X.shape[0], B):
        yield X[start:start + B], T[start:start + B]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_memmap_fit_equals_in_memory_fit_bitwise(tmp_path, dtype):
    X, T = _data(dtype)
    Xm, Tm = _memmap(tmp_path, X, "X"), _memmap(tmp_path, T, "T")
    assert isinstance(Xm, np.memmap)
    results = []
    for A, B in ((X, T), (Xm, Tm)):
        net = _net(dtype, dropout=0.2)
        hist = net.fit(A, B, epochs=3, batch_size=16, seed=4, validation_split=0.2,
                       optimizer=gd.optim.Adam(lr=1e-2), progress=False)
        results.append((net.params.copy(), hist.loss, hist.val_loss))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    assert results[0][1] == results[1][1] and results[0][2] == results[1][2]
    assert not np.array_equal(results[0][0], _net(dtype).params)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["generator", "callable", "list"])
def test_batch_iterables_equal_in_memory_fit_bitwise(dtype, kind):
    X, T = _data(dtype)
    epochs = 1 if kind == "generator" else 3
    ref = _net(dtype, dropout=0.3)
    ref_hist = ref.fit(X, T, epochs=epochs, batch_size=16, shuffle=False, seed=2,
                       optimizer=gd.optim.SGD(lr=0.1, momentum=0.9), progress=False,
                       validation_data=(X[:50], T[:50]))
    source = {"generator": lambda: _batches(X, T, 16),
              "callable": lambda: (lambda: _batches(X, T, 16)),
              "list": lambda: list(_batches(X, T, 16))}[kind]()
    net = _net(dtype, dropout=0.3)
    steps = []
    hist = net.fit(source, epochs=epochs, seed=2, optimizer=gd.optim.SGD(lr=0.1, momentum=0.9),
                   progress=False, validation_data=(X[:50], T[:50]),
                   step_callback=lambda step, loss: steps.append(step))
    np.testing.assert_array_equal(net.params, ref.params)
    assert hist.loss == ref_hist.loss and hist.val_loss == ref_hist.val_loss
    assert steps == list(range(1, 13 * epochs + 1))
    assert net.epochs_trained == epochs
    assert net.optimizer.step_count == ref.optimizer.step_count


def test_a_generator_for_several_epochs_is_refused_before_any_update():
    X, T = _data(np.float32)
    net = _net(np.float32)
    before = net.params.copy()
    with pytest.raises(ValueError, match="one-pass iterator.*callable"):
        net.fit(_batches(X, T, 16), epochs=2, progress=False)
    np.testing.assert_array_equal(net.params, before)
    assert net.epochs_trained == 0


@pytest.mark.parametrize("bad, error, match", [
    ((np.zeros((4, 5), np.float32), np.zeros(4, np.int64)), ValueError, "batch 3 X has 5"),
    ("not a pair", TypeError, "batch 3 must be a pair"),
    ((np.full((4, 6), np.nan, np.float32), np.zeros(4, np.int64)), ValueError,
     "batch 3 X contains NaN"),
])
def test_a_bad_batch_undoes_the_epoch(bad, error, match):
    X, T = _data(np.float32)
    net = _net(np.float32, dropout=0.2)
    net.fit(X, T, epochs=1, batch_size=16, optimizer=gd.optim.Adam(lr=1e-2), progress=False)
    params, opt = net.params.copy(), net.optimizer.state_dict()
    rng = net._rng.bit_generator.state

    def source():
        yield from list(_batches(X, T, 16))[:3]
        yield bad

    with pytest.raises(error, match=match):
        net.fit(source, epochs=2, progress=False)
    np.testing.assert_array_equal(net.params, params)
    assert net.optimizer.step_count == opt["step"]
    for key, buf in opt["state"].items():
        np.testing.assert_array_equal(net.optimizer.state[key], buf)
    assert net._rng.bit_generator.state == rng
    assert net.epochs_trained == 1 and len(net.history) == 1


def test_a_bad_batch_on_the_first_epoch_leaves_a_fresh_optimizer_fresh():
    X, T = _data(np.float64)
    net = _net(np.float64)
    before = net.params.copy()
    with pytest.raises(ValueError, match="batch 1"):
        net.fit([(X[:8], T[:8]), (X[:8, :2], T[:8])], epochs=1, progress=False)
    np.testing.assert_array_equal(net.params, before)
    assert net.optimizer.step_count == 0 and not net.optimizer.state


def test_stream_argument_errors():
    X, T = _data(np.float32)
    net = _net(np.float32)
    with pytest.raises(TypeError, match="T is required with array X"):
        net.fit(X, epochs=1)
    with pytest.raises(ValueError, match="validation_split needs array X"):
        net.fit(lambda: _batches(X, T, 16), validation_split=0.2)
    with pytest.raises(ValueError, match="yielded no batches"):
        net.fit(lambda: iter(()), epochs=1, progress=False)
    with pytest.raises(TypeError, match="X must be an array"):
        net.fit(5, None)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_memmap_and_batched_predict_equal_in_memory_predict(tmp_path, monkeypatch, dtype):
    monkeypatch.setattr(network, "FORWARD_BLOCK_ROWS", 7)    # many blocks, odd split
    X, T = _data(dtype, n=50)
    Xm = _memmap(tmp_path, X, "X")
    net = _net(dtype)
    # equal up to rounding only: BLAS may take another path for a 1-row block
    rtol = 1e-6 if dtype == np.float32 else 1e-13
    expected_proba = net.predict_proba(X)
    np.testing.assert_allclose(net.predict_proba(Xm), expected_proba, rtol=rtol)
    np.testing.assert_array_equal(net.predict(Xm), net.predict(X))
    scores, expected = net.evaluate(Xm, T), net.evaluate(X, T)
    np.testing.assert_allclose(scores["loss"], expected["loss"], rtol=rtol)
    assert scores["accuracy"] == expected["accuracy"]
    np.testing.assert_array_equal(net.predict(_batches(X, T, 16)), net.predict(X))
    np.testing.assert_array_equal(net.predict(lambda: (X[i:i + 9] for i in range(0, 50, 9))),
                                  net.predict(X))
    with pytest.raises(ValueError, match="no batches"):
        net.predict(iter(()))


def test_finite_check_is_chunked_and_exact():
    from gdcore.training import all_finite
    A = np.ones((1000, 3))
    assert all_finite(A, chunk_bytes=48)
    for i in (0, 1, 511, 999):
        B = A.copy()
        B[i, 2] = np.inf
        assert not all_finite(B, chunk_bytes=48)
    assert all_finite(np.ones((0, 3)))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_memmap_training_memory_does_not_grow_with_the_file(tmp_path):
    """A 200 MiB mapped training set: one epoch and a predict stay within 16 MiB of
    anonymous memory above the baseline (the unchunked finite check alone took a
    quarter of the file, 50 MiB; the unblocked forward pass 17 MiB)."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "memmap_memory.py"), "--gib", "0.1953125",
         "--path", str(tmp_path / "X.npy")],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["file_mib"] > 199
    assert result["predicted"] == result["n_samples"]
    assert result["fit_peak_growth_mib"] < 16, result
    assert result["predict_peak_growth_mib"] < 16, result
