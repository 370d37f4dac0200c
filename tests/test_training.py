"""MLP.fit / partial_fit, regularization, validation, early stopping, checkpoints."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import gdcore as gd
from gdcore import optim


def _child_env():
    """Environment for a child Python that imports the same gdcore as this process."""
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(gd.__file__)))
    env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in [env.get("PYTHONPATH")] if p])
    return env


def _blobs(n=240, seed=0, dtype=np.float32):
    """Three separable Gaussian blobs in 4-D."""
    rng = np.random.default_rng(seed)
    centers = np.array([[2, 0, 0, 1], [-2, 1, 0, -1], [0, -2, 2, 0]], dtype=np.float64)
    y = rng.integers(0, 3, n)
    X = centers[y] + 0.5 * rng.standard_normal((n, 4))
    return X.astype(dtype), y


# ---- batch modes ------------------------------------------------------------------

@pytest.mark.parametrize("batch_size, epochs, lr, target", [
    (None, 300, 0.5, 0.05),    # full-batch gradient descent
    (1, 5, 0.05, 0.05),        # stochastic
    (16, 30, 0.2, 0.05),       # mini-batch
])
@pytest.mark.parametrize("backend", ["native", "reference"])
def test_each_batch_mode_reaches_the_documented_loss(batch_size, epochs, lr, target,
                                                       backend):
    X, y = _blobs()
    net = gd.MLP([4, 16, 3], activation="tanh", seed=0, backend=backend)
    start = net.loss(X, y)
    history = net.fit(X, y, epochs=epochs, batch_size=batch_size,
                      optimizer=optim.SGD(lr=lr), progress=False)
    assert len(history) == epochs and history.epoch == list(range(epochs))
    assert net.loss(X, y) < target < start
    assert net.evaluate(X, y)["accuracy"] >= 0.98
    steps_per_epoch = 1 if batch_size is None else -(-len(X) // batch_size)
    assert net.optimizer.step_count == epochs * steps_per_epoch


def test_native_and_reference_fit_agree(dtype):
    X, y = _blobs(dtype=dtype)
    nets = [gd.MLP([4, 10, 3], activation="relu", dtype=dtype, seed=4, dropout=0.2,
                   backend=b) for b in ("native", "reference")]
    hist = [net.fit(X, y, epochs=3, batch_size=25, l2=1e-3, input_noise=0.05,
                    progress=False) for net in nets]
    rtol = 1e-4 if dtype == np.float32 else 1e-9
    np.testing.assert_allclose(nets[0].params, nets[1].params, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(hist[0].loss, hist[1].loss, rtol=rtol)


def test_epoch_loss_is_the_mean_of_the_step_losses():
    X, y = _blobs(n=50)
    a = gd.MLP([4, 6, 3], seed=1)
    b = gd.MLP([4, 6, 3], seed=1)
    history = a.fit(X, y, epochs=1, batch_size=20, shuffle=False, progress=False)
    losses = [b.partial_fit(X[s:s + 20], y[s:s + 20]) for s in range(0, 50, 20)]
    expected = (losses[0] * 20 + losses[1] * 20 + losses[2] * 10) / 50
    assert history.loss[0] == pytest.approx(expected, rel=1e-12)


def test_shuffling_is_seeded_and_changes_every_epoch():
    X, y = _blobs(n=60)
    runs = []
    for seed in (3, 3, 4):
        net = gd.MLP([4, 5, 3], seed=0)
        net.fit(X, y, epochs=2, batch_size=8, seed=seed, progress=False)
        runs.append(net.params.copy())
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])
    unshuffled = gd.MLP([4, 5, 3], seed=0)
    unshuffled.fit(X, y, epochs=2, batch_size=8, shuffle=False, progress=False)
    assert not np.array_equal(unshuffled.params, runs[0])


# ---- online learning and resume -----------------------------------------------------

@pytest.mark.parametrize("backend", ["native", "reference"])
def test_partial_fit_equals_fit(backend):
    X, y = _blobs(n=70)
    a = gd.MLP([4, 9, 3], seed=2, dropout=0.25, backend=backend)
    a.fit(X, y, epochs=2, batch_size=16, shuffle=False, optimizer=optim.Adam(lr=0.01),
          input_noise=0.1, progress=False)
    b = gd.MLP([4, 9, 3], seed=2, dropout=0.25, backend=backend)
    opt = optim.Adam(lr=0.01)
    for _ in range(2):
        for s in range(0, 70, 16):
            b.partial_fit(X[s:s + 16], y[s:s + 16], optimizer=opt, input_noise=0.1)
    np.testing.assert_array_equal(a.params, b.params)
    assert a.optimizer.step_count == b.optimizer.step_count == 10


def test_two_fits_equal_one():
    X, y = _blobs(n=90)
    a = gd.MLP([4, 8, 3], seed=5, dropout=0.1)
    a.fit(X, y, epochs=6, batch_size=10, progress=False, lr_schedule=None)
    b = gd.MLP([4, 8, 3], seed=5, dropout=0.1)
    b.fit(X, y, epochs=2, batch_size=10, progress=False)
    b.fit(X, y, epochs=4, batch_size=10, progress=False)
    np.testing.assert_array_equal(a.params, b.params)
    assert b.epochs_trained == 6 and len(b.history) == 6


RESUME_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import gdcore as gd
    net = gd.load(sys.argv[1])
    rng = np.random.default_rng(0)
    X = np.load(sys.argv[2]); y = np.load(sys.argv[3])
    net.fit(X, y, epochs=5, batch_size=12, progress=False, input_noise=0.05, l2=1e-4)
    np.save(sys.argv[4], net.params)
""")


def _schedule():
    if hasattr(gd.schedules, "StepDecay"):
        return gd.schedules.StepDecay(step_size=3, gamma=0.5)
    return None


def test_exact_resume_in_a_new_process_is_bitwise(tmp_path):
    X, y = _blobs(n=100)
    kwargs = dict(batch_size=12, progress=False, input_noise=0.05, l2=1e-4)
    straight = gd.MLP([4, 10, 3], activation="sigmoid", seed=9, dropout=0.2)
    straight.fit(X, y, epochs=10, optimizer=optim.Adam(lr=0.01, amsgrad=True),
                 lr_schedule=_schedule(), **kwargs)

    first = gd.MLP([4, 10, 3], activation="sigmoid", seed=9, dropout=0.2)
    first.fit(X, y, epochs=5, optimizer=optim.Adam(lr=0.01, amsgrad=True),
              lr_schedule=_schedule(), **kwargs)
    path = tmp_path / "run.npz"
    first.save(path)
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    script = tmp_path / "resume.py"
    script.write_text(RESUME_SCRIPT)
    out = tmp_path / "params.npy"
    subprocess.run([sys.executable, str(script), str(path), str(tmp_path / "X.npy"),
                    str(tmp_path / "y.npy"), str(out)], check=True, timeout=120,
                   env=_child_env())
    np.testing.assert_array_equal(np.load(out), straight.params)


def test_load_restores_everything(tmp_path):
    X, y = _blobs(n=40, dtype=np.float64)
    net = gd.MLP([4, 7, 3], activation=["tanh"], dtype="float64", seed=3, dropout=0.1)
    net.fit(X, y, epochs=3, batch_size=8, optimizer=optim.RMSprop(lr=0.01, centered=True),
            validation_split=0.25, progress=False)
    net.save(tmp_path / "m.npz")
    back = gd.load(tmp_path / "m.npz")
    np.testing.assert_array_equal(back.params, net.params)
    assert back.layer_sizes == net.layer_sizes and back.dtype == net.dtype
    assert back.activations == net.activations and back.dropout == net.dropout
    assert back.epochs_trained == 3
    assert type(back.optimizer) is optim.RMSprop
    assert back.optimizer.hyperparameters == net.optimizer.hyperparameters
    assert back.optimizer.step_count == net.optimizer.step_count
    for key, buf in net.optimizer.state.items():
        np.testing.assert_array_equal(back.optimizer.state[key], buf)
    assert back._rng.bit_generator.state == net._rng.bit_generator.state
    assert back.history.as_dict() == net.history.as_dict()
    np.testing.assert_array_equal(back.predict(X), net.predict(X))


def test_corrupt_and_truncated_checkpoints_raise_clear_errors(tmp_path):
    net = gd.MLP([3, 4, 2], seed=0)
    path = tmp_path / "ok.npz"
    net.save(path)
    data = path.read_bytes()
    for name, content in [("truncated.npz", data[: len(data) // 2]),
                          ("garbage.npz", b"not a checkpoint at all"),
                          ("empty.npz", b""),
                          ("flipped.npz", data[:100] + bytes([data[100] ^ 0xFF]) + data[101:])]:
        bad = tmp_path / name
        bad.write_bytes(content)
        with pytest.raises(ValueError, match="not a valid gdcore checkpoint"):
            gd.load(bad)
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, params=np.zeros(3), meta=np.frombuffer(b'{"format": "x"}', np.uint8))
    with pytest.raises(ValueError, match="not a gdcore checkpoint"):
        gd.load(foreign)
    with pytest.raises(FileNotFoundError):
        gd.load(tmp_path / "missing.npz")


SAVE_FOREVER = textwrap.dedent("""
    import sys
    import numpy as np
    import gdcore as gd
    net = gd.MLP([200, 400, 300, 10], seed=0)
    print("ready", flush=True)
    i = 0
    while True:
        i += 1
        net.params[:] = i
        net.save(sys.argv[1])
""")


def test_killing_a_save_leaves_a_loadable_checkpoint(tmp_path):
    path = tmp_path / "ck.npz"
    net = gd.MLP([200, 400, 300, 10], seed=0)
    net.save(path)
    script = tmp_path / "save_forever.py"
    script.write_text(SAVE_FOREVER)
    rng = np.random.default_rng(0)
    for attempt in range(5):
        proc = subprocess.Popen([sys.executable, str(script), str(path)],
                                stdout=subprocess.PIPE, text=True, env=_child_env())
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(float(rng.uniform(0.05, 0.4)))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        back = gd.load(path)
        values = np.unique(back.params)
        # a checkpoint is either the first one or one whole later save
        assert values.size == 1 or np.array_equal(back.params, net.params), attempt
    leftovers = [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
    for name in leftovers:      # temporary files of killed saves never replace the file
        assert name.startswith(".ck.npz.")


# ---- regularization ----------------------------------------------------------------

def test_l2_shrinks_the_weights_and_spares_the_biases():
    X, y = _blobs()
    norms, biases = {}, {}
    for l2 in (0.0, 0.05):
        net = gd.MLP([4, 32, 3], seed=0)
        net.fit(X, y, epochs=20, batch_size=16, l2=l2, optimizer=optim.SGD(lr=0.1),
                progress=False)
        norms[l2] = sum(float(np.sum(layer.W.astype(np.float64) ** 2)) for layer in net.layers)
        biases[l2] = net.layers[0].b.copy()
    assert norms[0.05] < 0.7 * norms[0.0]
    # one step from the same parameters: the penalty changes the weights' update only
    after = {}
    for l2 in (0.0, 0.05):
        net = gd.MLP([4, 32, 3], seed=0)
        net.train_step(X[:16], y[:16], optim.SGD(lr=0.1), l2=l2)
        after[l2] = net
    for a, b in zip(after[0.0].layers, after[0.05].layers):
        np.testing.assert_array_equal(a.b, b.b)
        assert not np.array_equal(a.W, b.W)


def test_penalties_enter_loss_and_gradient_exactly(rng):
    net = gd.MLP([3, 4, 2], dtype="float64", seed=1)
    X = rng.standard_normal((5, 3))
    y = rng.integers(0, 2, 5)
    data_loss, data_grad = net.gradient(X, y)
    W = [layer.W.copy() for layer in net.layers]
    opt = optim.SGD(lr=0.0)
    loss = net.train_step(X, y, opt, l1=0.01, l2=0.1)
    expected = data_loss + sum(0.05 * np.sum(w ** 2) + 0.01 * np.sum(np.abs(w)) for w in W)
    assert loss == pytest.approx(expected, rel=1e-12)
    grad = data_grad.copy()
    offset = 0
    for w in W:
        grad[offset:offset + w.size] += 0.1 * w.ravel() + 0.01 * np.sign(w.ravel())
        offset += w.size + w.shape[1]
    np.testing.assert_allclose(net.grads, grad, rtol=1e-12, atol=1e-15)


def test_l1_drives_weights_to_zero():
    X, y = _blobs()
    X = np.hstack([X, np.random.default_rng(1).standard_normal((len(X), 6)).astype(np.float32)])
    net = gd.MLP([10, 3], output="softmax", seed=0)
    net.fit(X, y, epochs=40, batch_size=32, l1=0.02, optimizer=optim.SGD(lr=0.05),
            progress=False)
    noise_weights = np.abs(net.layers[0].W[4:])
    signal_weights = np.abs(net.layers[0].W[:4])
    assert noise_weights.mean() < 0.25 * signal_weights.mean()


def test_dropout_and_noise_act_only_in_training():
    X, y = _blobs(n=50)
    net = gd.MLP([4, 30, 3], seed=0, dropout=0.5)
    before = net.params.copy()
    # prediction and evaluation are deterministic and match a network without dropout
    plain = gd.MLP([4, 30, 3], seed=0)
    np.testing.assert_array_equal(net.forward(X), plain.forward(X))
    assert net.loss(X, y) == plain.loss(X, y)
    # training with lr=0 sees different losses (masks/noise) but changes nothing
    opt = optim.SGD(lr=0.0)
    losses = [net.partial_fit(X, y, optimizer=opt) for _ in range(3)]
    assert len(set(losses)) == 3 and all(abs(l - plain.loss(X, y)) > 1e-7 for l in losses)
    noisy = gd.MLP([4, 30, 3], seed=0)
    noisy_losses = [noisy.partial_fit(X, y, optimizer=opt, input_noise=0.5) for _ in range(3)]
    assert len(set(noisy_losses)) == 3
    np.testing.assert_array_equal(net.params, before)
    np.testing.assert_array_equal(noisy.params, before)


# ---- validation, early stopping, callbacks ------------------------------------------

def test_validation_split_holds_out_the_last_samples():
    X, y = _blobs(n=100)
    a = gd.MLP([4, 6, 3], seed=0)
    ha = a.fit(X, y, epochs=3, validation_split=0.2, progress=False)
    b = gd.MLP([4, 6, 3], seed=0)
    hb = b.fit(X[:80], y[:80], epochs=3, validation_data=(X[80:], y[80:]), progress=False)
    np.testing.assert_array_equal(a.params, b.params)
    assert ha.val_loss == hb.val_loss
    assert ha.val_loss[-1] == pytest.approx(a.loss(X[80:], y[80:]))
    assert ha.val_accuracy[-1] == a.evaluate(X[80:], y[80:])["accuracy"]


def test_early_stopping_stops_and_restores_the_best_weights():
    X, y = _blobs(n=120)
    y_val = np.random.default_rng(123).integers(0, 3, 40)   # unlearnable validation labels
    snapshots = []
    net = gd.MLP([4, 64, 3], seed=0)
    history = net.fit(X, y, epochs=200, batch_size=8, optimizer=optim.Adam(lr=0.01),
                      validation_data=(X[:40], y_val),
                      early_stopping=gd.EarlyStopping(patience=3),
                      callbacks=[lambda h: snapshots.append(net.params.copy())],
                      progress=False)
    assert history.stopped_early and len(history) < 200
    best = int(np.argmin(history.val_loss))
    assert history.best_epoch == history.epoch[best]
    assert len(history) == best + 1 + 3                 # patience epochs after the best
    np.testing.assert_array_equal(net.params, snapshots[best])


def test_callbacks_see_the_history_and_can_stop():
    X, y = _blobs(n=40)
    seen = []

    class Stopper:
        def on_epoch_end(self, history):
            seen.append(len(history))
            return len(history) == 4

    history = gd.MLP([4, 5, 3]).fit(X, y, epochs=10, callbacks=[Stopper()], progress=False)
    assert seen == [1, 2, 3, 4] and len(history) == 4 and history.stopped_early


def test_step_callback_sees_every_step_with_identical_results():
    X, y = _blobs(n=45)
    steps = []
    a = gd.MLP([4, 5, 3], seed=0, dropout=0.1)
    a.fit(X, y, epochs=2, batch_size=10, progress=False,
          step_callback=lambda step, loss: steps.append((step, loss)))
    b = gd.MLP([4, 5, 3], seed=0, dropout=0.1)
    b.fit(X, y, epochs=2, batch_size=10, progress=False)
    assert [s for s, _ in steps] == list(range(1, 11))
    np.testing.assert_array_equal(a.params, b.params)


def test_history_records_lr_and_time():
    X, y = _blobs(n=30)
    net = gd.MLP([4, 5, 3])
    started = time.perf_counter()
    history = net.fit(X, y, epochs=2, optimizer=optim.SGD(lr=0.3), progress=False)
    elapsed = time.perf_counter() - started
    assert history.lr == [0.3, 0.3]
    # each epoch's own duration: positive, and together within the call's
    assert len(history.seconds) == 2 and all(s > 0 for s in history.seconds)
    assert sum(history.seconds) <= elapsed
    assert history.val_loss == [None, None]


def test_progress_bar_shows_metrics(capsys):
    X, y = _blobs(n=30)
    gd.MLP([4, 5, 3]).fit(X, y, epochs=2, validation_split=0.2, progress=True)
    err = capsys.readouterr().err
    assert "2/2" in err and "val_loss" in err


# ---- bad input -----------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(batch_size=0), ValueError, "batch_size"),
    (dict(batch_size=2.5), TypeError, "batch_size"),
    (dict(epochs=-1), ValueError, "epochs"),
    (dict(validation_split=0.0), ValueError, "validation_split"),
    (dict(validation_split=1.0), ValueError, "validation_split"),
    (dict(validation_split=1.5), ValueError, "validation_split"),
    (dict(validation_split=0.2, validation_data=(None, None)), ValueError, "not both"),
    (dict(l2=-0.1), ValueError, "l2"),
    (dict(optimizer="sgd"), TypeError, "optimizer"),
    (dict(early_stopping=3), TypeError, "early_stopping"),
    (dict(lr_schedule=0.1), TypeError, "lr_schedule"),
])
def test_fit_rejects_bad_arguments(kwargs, exc, match):
    X, y = _blobs(n=20)
    with pytest.raises(exc, match=match):
        gd.MLP([4, 5, 3]).fit(X, y, progress=False, **kwargs)


def test_fit_rejects_bad_data():
    X, y = _blobs(n=20)
    net = gd.MLP([4, 5, 3])
    with pytest.raises(ValueError, match="20 samples but T has 19"):
        net.fit(X, y[:19], progress=False)
    bad = X.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        net.fit(bad, y, progress=False)
    bad[3, 2] = np.inf
    with pytest.raises(ValueError, match="NaN or infinity"):
        net.fit(bad, y, progress=False)
    with pytest.raises(ValueError, match="no samples"):
        net.fit(X[:0], y[:0], progress=False)
    with pytest.raises(TypeError, match="real numbers"):
        net.fit(X.astype(np.complex64), y, progress=False)
    with pytest.raises(ValueError, match="whole numbers"):
        net.fit(X, y + 0.5, progress=False)
    assert net.epochs_trained == 0 and net.optimizer is None


def test_diverging_training_stops():
    X, y = _blobs(n=40)
    net = gd.MLP([4, 5, 3], output="identity", loss="squared_error", seed=0)
    with pytest.warns(RuntimeWarning, match="lr=10"):
        history = net.fit(X, np.eye(3, dtype=np.float32)[y] * 1e3, epochs=50,
                          optimizer=optim.SGD(lr=10.0), progress=False)
    # the diverged epoch is undone: only finite epochs are recorded and kept
    assert history.stopped_early and history.stop_reason == "diverged"
    assert all(np.isfinite(history.loss)) and np.isfinite(net.params).all()
    assert net.epochs_trained == len(history) == net.optimizer.step_count // 2


def test_digits_quality():
    """The figure of the issue: 64-128-10 ReLU on scikit-learn's digits, >= 97%."""
    from sklearn.datasets import load_digits
    digits = load_digits()
    X = (digits.data / 16).astype(np.float32)
    y = digits.target
    order = np.random.default_rng(0).permutation(len(X))
    X, y = X[order], y[order]
    n_test = len(X) // 5
    net = gd.MLP([64, 128, 10], activation="relu", seed=0)
    net.fit(X[n_test:], y[n_test:], epochs=30, batch_size=32,
            optimizer=optim.Adam(lr=1e-3), progress=False)
    assert net.evaluate(X[:n_test], y[:n_test])["accuracy"] >= 0.97
