"""Error paths that had no test: each bad input raises the documented error, naming the
argument, and leaves the state it was given as it was; and the early-stopping options
that change what ``fit`` does (``min_delta``, ``monitor="loss"``,
``restore_best_weights``)."""
import numpy as np
import pytest

import gdcore as gd
from test_reliability_checkpoint import (_checkpoint, _expect_invalid, _members, _meta_of,
                                         _npy, _with_meta, _write)


def _data(n=20, n_in=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, n_in)).astype(np.float32), np.arange(n) % 2


# ---- checkpoint mismatches ------------------------------------------------------------

def test_checkpoint_params_not_matching_the_architecture(tmp_path):
    members = _members(_checkpoint(tmp_path))
    meta = _meta_of(members)
    meta["network"]["layer_sizes"] = [3, 5, 2]          # 32 parameters, the file has 26
    _expect_invalid(_write(tmp_path / "arch.npz", _with_meta(members, meta)),
                    r"member 'params\.npy' has shape \(26,\), the architecture needs "
                    r"\(32,\)$")


def test_checkpoint_optimizer_buffer_not_matching_the_parameters(tmp_path):
    members = _members(_checkpoint(tmp_path))
    members["optimizer/exp_avg.npy"] = _npy(np.zeros(25, np.float32))
    _expect_invalid(_write(tmp_path / "state.npz", members), "not a valid gdcore checkpoint")


def test_checkpoint_with_an_unknown_random_generator(tmp_path):
    members = _members(_checkpoint(tmp_path))
    meta = _meta_of(members)
    meta["rng"]["bit_generator"] = "Mersenne"
    _expect_invalid(_write(tmp_path / "rng.npz", _with_meta(members, meta)),
                    "unknown random generator 'Mersenne'")


def test_checkpoint_that_does_not_exist(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        gd.load(tmp_path / "missing.npz")


# ---- toolkit ---------------------------------------------------------------------------

def test_minimize_rejects_a_non_callable_grad_and_an_empty_x0():
    with pytest.raises(TypeError, match=r"^grad must be callable or None, got int$"):
        gd.minimize(lambda x: float(x @ x), np.ones(2), grad=3)
    with pytest.raises(ValueError, match=r"^x0 is empty$"):
        gd.minimize(lambda x: 0.0, np.ones(0))


@pytest.mark.parametrize("X, exc, message", [
    (np.array([[np.nan], [1.0]]), ValueError, r"^X and y must be finite$"),
    ([["a"]], TypeError, r"^X must be real, got dtype <U1$"),
])
def test_linear_regression_rejects_bad_X(X, exc, message):
    with pytest.raises(exc, match=message):
        gd.linear_regression(X, np.ones(len(X)))


# ---- fit and partial_fit ---------------------------------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    (dict(l1=-1), r"^l1 must be >= 0\.0, got -1\.0$"),
    (dict(input_noise=-0.1), r"^input_noise must be >= 0\.0, got -0\.1$"),
])
def test_fit_rejects_negative_penalties_before_changing_anything(kwargs, message):
    X, T = _data()
    net = gd.MLP([3, 4, 2], seed=0)
    before = net.params.copy()
    with pytest.raises(ValueError, match=message):
        net.fit(X, T, epochs=1, progress=False, **kwargs)
    np.testing.assert_array_equal(net.params, before)
    assert net.epochs_trained == 0 and net.optimizer is None


def test_fit_rejects_nan_in_targets():
    X, _ = _data()
    T = np.random.default_rng(1).standard_normal((20, 1))
    T[3, 0] = np.nan
    net = gd.MLP([3, 4, 1], output="identity", loss="squared_error", seed=0)
    before = net.params.copy()
    with pytest.raises(ValueError, match=r"^T contains NaN or infinity$"):
        net.fit(X, T, epochs=1, progress=False)
    np.testing.assert_array_equal(net.params, before)


X20, T20 = _data()


@pytest.mark.parametrize("args, kwargs, exc, message", [
    ((X20, T20), dict(l1=-1), ValueError, r"^l1 must be >= 0\.0, got -1\.0$"),
    ((X20, T20), dict(l2=-1), ValueError, r"^l2 must be >= 0\.0, got -1\.0$"),
    ((X20, T20), dict(input_noise=-1), ValueError, r"^input_noise must be >= 0\.0, got -1\.0$"),
    ((X20, T20), dict(optimizer="adam"), TypeError,
     r"^optimizer must be a gdcore\.optim optimizer \(SGD, Adam, \.\.\.\), got str$"),
    ((np.full((2, 3), np.nan), T20[:2]), {}, ValueError, r"^X contains NaN or infinity$"),
    ((np.ones((0, 3)), T20[:0]), {}, ValueError, r"^X has no samples$"),
    ((X20, T20[:5]), {}, ValueError, r"^X has 20 samples but T has 5$"),
    ((X20, T20), dict(n_threads=0), ValueError, r"^n_threads must be >= 1, got 0$"),
], ids=["l1", "l2", "input_noise", "optimizer", "nan_X", "empty", "mismatch", "n_threads"])
def test_partial_fit_checks_leave_the_training_state_unchanged(args, kwargs, exc, message):
    net = gd.MLP([3, 4, 2], seed=0)
    opt = gd.optim.Adam()
    net.partial_fit(X20, T20, optimizer=opt)
    params, state = net.params.copy(), opt.state_dict()
    with pytest.raises(exc, match=message):
        net.partial_fit(*args, **kwargs)
    np.testing.assert_array_equal(net.params, params)
    assert opt.step_count == state["step"] == 1
    for key, buf in opt.state.items():
        np.testing.assert_array_equal(buf, state["state"][key])


# ---- EarlyStopping ---------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, exc, message", [
    (dict(patience=-1), ValueError, r"^patience must be >= 0, got -1$"),
    (dict(patience=1.5), TypeError, r"^patience must be an integer, got 1\.5$"),
    (dict(min_delta=-1), ValueError, r"^min_delta must be >= 0\.0, got -1\.0$"),
    (dict(min_delta=np.nan), ValueError, r"^min_delta must be finite, got nan$"),
    (dict(monitor=""), TypeError, r"^monitor must be a History key \(a str\), got ''$"),
    (dict(mode="up"), ValueError, r"mode"),
])
def test_early_stopping_checks(kwargs, exc, message):
    with pytest.raises(exc, match=message):
        gd.EarlyStopping(**kwargs)


def _trained(epochs, early_stopping=None):
    X, T = _data(64)
    net = gd.MLP([3, 8, 2], seed=3)
    history = net.fit(X, T, epochs=epochs, batch_size=16, shuffle=False,
                      optimizer=gd.optim.SGD(lr=0.05), early_stopping=early_stopping,
                      progress=False)
    return net, history


@pytest.mark.parametrize("restore", [True, False])
def test_min_delta_on_the_training_loss_and_restore_best_weights(restore):
    """With min_delta larger than any one-epoch improvement of the training loss
    (monitor='loss', no validation data), the first epoch stays the best: training
    stops after 1 + patience epochs, and the parameters are those after epoch 1
    (restore_best_weights=True) or after the last epoch (False)."""
    patience = 2
    stop = gd.EarlyStopping(patience=patience, min_delta=1e3, monitor="loss",
                            restore_best_weights=restore)
    net, history = _trained(10, stop)
    assert len(history.loss) == 1 + patience
    assert history.stopped_early
    assert history.loss[-1] < history.loss[0]            # it did improve, by < min_delta
    want, _ = _trained(1 if restore else 1 + patience)
    np.testing.assert_array_equal(net.params, want.params)


def test_without_min_delta_the_improving_loss_never_stops():
    stop = gd.EarlyStopping(patience=1, min_delta=0.0, monitor="loss")
    _, history = _trained(6, stop)
    assert np.all(np.diff(history.loss) < 0)
    assert len(history.loss) == 6 and not history.stopped_early
