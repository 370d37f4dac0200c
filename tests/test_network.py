"""gdcore.MLP: flat parameters, native train step against the reference backend."""
import gc
import tracemalloc

import numpy as np
import pytest

import gdcore as gd
from gdcore import optim
from gdcore.reference.network import dropout_mask

PAIRS = [("softmax", "cross_entropy"), ("sigmoid", "binary_cross_entropy"),
         ("sigmoid", "squared_error"), ("identity", "squared_error"), ("identity", "mse"),
         ("identity", ("huber", {"delta": 0.5})), ("identity", "mae"),
         ("identity", "poisson"), (("softplus", {"beta": 2.0}), "mse"), ("gelu", "huber")]
# the parametrised hidden activations, at their defaults and with other parameters
PARAM_ACTIVATIONS = ["leaky_relu", ("leaky_relu", {"negative_slope": 0.2}), "elu",
                     ("elu", {"alpha": 0.5}), "gelu", ("gelu", {"approximate": "tanh"}),
                     "softplus", ("softplus", {"beta": 2.0, "threshold": 5.0}), "silu"]
OPTIMIZERS = [
    (optim.SGD, dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3)),
    (optim.Adagrad, dict(lr=0.05, lr_decay=0.01)),
    (optim.Adadelta, dict()),
    (optim.RMSprop, dict(lr=1e-3, momentum=0.5, centered=True)),
    (optim.Adam, dict(lr=1e-2, amsgrad=True)),
    (optim.AdamW, dict(lr=1e-2)),
    (optim.NAdam, dict(lr=1e-2, weight_decay=1e-3)),
    (optim.Adamax, dict(lr=1e-2)),
    (optim.RAdam, dict(lr=1e-2, weight_decay=1e-3, decoupled_weight_decay=True)),
    (optim.Rprop, dict(lr=1e-2)),
]


def _targets(loss, n, k, dtype, rng, labels=True):
    if loss == "cross_entropy":
        y = rng.integers(0, k, n)
        return y if labels else np.eye(k, dtype=dtype)[y]
    if loss == "binary_cross_entropy":
        return (rng.random((n, k)) < 0.5).astype(dtype)
    return rng.standard_normal((n, k)).astype(dtype)


def _pair(sizes, output, loss, dtype, **kw):
    return [gd.MLP(sizes, output=output, loss=loss, dtype=dtype, seed=3, backend=b, **kw)
            for b in ("native", "reference")]


# ---- construction --------------------------------------------------------------

def test_parameters_are_views_of_one_flat_buffer():
    net = gd.MLP([5, 4, 3], activation="tanh", output="softmax", dtype="float64")
    assert net.params.ndim == 1 and net.params.flags.c_contiguous
    assert net.n_params == 5 * 4 + 4 + 4 * 3 + 3
    offset = 0
    for layer, (n_in, n_out) in zip(net.layers, [(5, 4), (4, 3)]):
        assert layer.W.shape == (n_in, n_out) and layer.b.shape == (n_out,)
        assert np.shares_memory(layer.W, net.params) and np.shares_memory(layer.dW, net.grads)
        layer.W[0, 0] = 123.0
        assert net.params[offset] == 123.0
        offset += n_in * n_out + n_out
    net.params[-1] = 7.0
    assert net.layers[-1].b[-1] == 7.0


def test_initialisation_is_seeded_glorot_and_he():
    a = gd.MLP([50, 40, 30, 10], activation=["relu", "tanh"], seed=5, dtype="float64")
    b = gd.MLP([50, 40, 30, 10], activation=["relu", "tanh"], seed=5, dtype="float32")
    c = gd.MLP([50, 40, 30, 10], activation=["relu", "tanh"], seed=6, dtype="float64")
    np.testing.assert_array_equal(a.params.astype(np.float32), b.params)
    assert not np.array_equal(a.params, c.params)
    he, glorot, out = (l.W for l in a.layers)
    assert np.abs(he).max() <= np.sqrt(6 / 50) and np.abs(he).max() > 0.9 * np.sqrt(6 / 50)
    assert np.abs(glorot).max() <= np.sqrt(6 / 70) and np.abs(glorot).max() > 0.9 * np.sqrt(6 / 70)
    assert np.abs(out).max() <= np.sqrt(6 / 40)
    assert all(np.all(l.b == 0) for l in a.layers)
    # uniform: the variance is limit^2 / 3
    assert abs(he.var() - (6 / 50) / 3) < 0.1 * (6 / 50) / 3


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(layer_sizes=[4]), ValueError, "layer_sizes"),
    (dict(layer_sizes=[4, 0, 2]), ValueError, "layer_sizes"),
    (dict(layer_sizes=[4, 2.5, 2]), TypeError, "layer_sizes"),
    (dict(layer_sizes=[4, 3, 2], activation="softmax"), ValueError, "activation"),
    (dict(layer_sizes=[4, 3, 2], activation=["relu", "tanh"]), ValueError, "activation"),
    (dict(layer_sizes=[4, 3, 2], output="softmax", loss="mse"), ValueError, "does not go"),
    (dict(layer_sizes=[4, 3, 2], output="identity", loss="cross_entropy"), ValueError, "does not go"),
    (dict(layer_sizes=[4, 3, 1], output="softmax"), ValueError, "softmax"),
    (dict(layer_sizes=[4, 3, 2], dtype="int32"), TypeError, "dtype"),
    (dict(layer_sizes=[4, 3, 2], backend="gpu"), ValueError, "backend"),
    (dict(layer_sizes=[4, 3, 2], dropout=1.0), ValueError, "dropout"),
    (dict(layer_sizes=[4, 3, 2], dropout=[0.1, 0.2]), ValueError, "dropout"),
    (dict(layer_sizes=[4, 3, 2], seed=-1), ValueError, "seed"),
])
def test_bad_construction_raises(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        gd.MLP(**kwargs)


def test_output_and_loss_defaults_pair_up():
    assert gd.MLP([3, 2], loss="binary_cross_entropy").output == "sigmoid"
    assert gd.MLP([3, 2], output="identity").loss_name == "squared_error"
    net = gd.MLP([3, 4, 2])
    assert (net.output, net.loss_name) == ("softmax", "cross_entropy")


# ---- native against reference --------------------------------------------------

@pytest.mark.parametrize("cls, options", OPTIMIZERS, ids=[c.__name__ for c, _ in OPTIMIZERS])
@pytest.mark.parametrize("output, loss", PAIRS)
def test_native_matches_reference_after_20_steps(cls, options, output, loss, dtype, rng):
    sizes = [9, 12, 7, 3]
    native, ref = _pair(sizes, output, loss, dtype, activation=["tanh", "relu"])
    opt_n, opt_r = cls(**options), cls(**options)
    X = rng.standard_normal((17, 9)).astype(dtype)
    T = _targets(loss, 17, 3, dtype, rng)
    for _ in range(20):
        loss_n = native.train_step(X, T, opt_n)
        loss_r = ref.train_step(X, T, opt_r)
    rtol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(native.params, ref.params, rtol=rtol, atol=rtol * 10)
    assert loss_n == pytest.approx(loss_r, rel=rtol)
    for key in opt_n.state:
        np.testing.assert_allclose(opt_n.state[key], opt_r.state[key], rtol=rtol, atol=rtol)
    assert opt_n.step_count == opt_r.step_count == 20


@pytest.mark.parametrize("n_threads", [1, 2])
def test_dropout_noise_and_penalties_match_reference(dtype, n_threads, rng):
    native, ref = _pair([6, 20, 11, 4], "softmax", "cross_entropy", dtype,
                        activation="sigmoid", dropout=[0.3, 0.1])
    opt_n, opt_r = optim.Adam(lr=0.01), optim.Adam(lr=0.01)
    X = rng.standard_normal((33, 6)).astype(dtype)
    T = rng.integers(0, 4, 33)
    for _ in range(10):
        ln = native.train_step(X, T, opt_n, l1=1e-3, l2=1e-2, input_noise=0.2,
                               n_threads=n_threads)
        lr_ = ref.train_step(X, T, opt_r, l1=1e-3, l2=1e-2, input_noise=0.2)
    rtol = 1e-4 if dtype == np.float32 else 1e-9
    np.testing.assert_allclose(native.params, ref.params, rtol=rtol, atol=rtol)
    assert ln == pytest.approx(lr_, rel=rtol)


def test_dropout_acts_in_training_only_and_masks_at_the_rate(rng):
    net = gd.MLP([20, 400, 3], activation="relu", dropout=0.5, dtype="float64", seed=1)
    X = rng.standard_normal((8, 20))
    T = rng.integers(0, 3, 8)
    # evaluation (forward, loss, gradient) is deterministic: no dropout
    assert net.loss(X, T) == net.loss(X, T)
    l1, g1 = net.gradient(X, T)
    l2, g2 = net.gradient(X, T)
    assert l1 == l2 and np.array_equal(g1, g2)
    keep = dropout_mask(12345, 0, 100_000, 0.5)
    assert abs(keep.mean() - 0.5) < 0.01
    # training steps differ from the deterministic gradient (masks), with SGD lr=0
    before = net.params.copy()
    opt = optim.SGD(lr=0.0)
    losses = {net.train_step(X, T, opt) for _ in range(3)}
    assert len(losses) == 3 and np.array_equal(net.params, before)


def test_gradient_does_not_update_and_matches_reference(dtype, rng):
    native, ref = _pair([5, 8, 3], "softmax", "cross_entropy", dtype, activation="tanh")
    X = rng.standard_normal((10, 5)).astype(dtype)
    T = rng.integers(0, 3, 10)
    before = native.params.copy()
    ln, gn = native.gradient(X, T)
    lr_, gr = ref.gradient(X, T)
    np.testing.assert_array_equal(native.params, before)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(gn, gr, rtol=rtol, atol=rtol)
    assert ln == pytest.approx(lr_, rel=rtol)
    assert ln == pytest.approx(native.loss(X, T), rel=rtol)


@pytest.mark.parametrize("activation", ["identity", "sigmoid", "tanh", "relu"]
                         + PARAM_ACTIVATIONS)
@pytest.mark.parametrize("output, loss", PAIRS)
def test_gradcheck_float64(activation, output, loss, rng):
    net = gd.MLP([4, 6, 5, 3], activation=activation, output=output, loss=loss,
                 dtype="float64", seed=11)
    X = rng.standard_normal((7, 4))
    T = _targets(loss, 7, 3, np.float64, rng, labels=False)
    result = gd.gradcheck(net, X, T)
    assert result.passed, result
    assert result.max_rel_error <= 1e-6


def test_gradcheck_detects_a_wrong_gradient(rng, monkeypatch):
    net = gd.MLP([3, 4, 2], activation="tanh", dtype="float64")
    X = rng.standard_normal((5, 3))
    T = rng.integers(0, 2, 5)
    real = gd.MLP.gradient

    def wrong(self, X, T, n_threads=None):
        loss, g = real(self, X, T, n_threads)
        return loss, g * 1.01
    monkeypatch.setattr(gd.MLP, "gradient", wrong)
    assert not gd.gradcheck(net, X, T).passed


# ---- allocation ------------------------------------------------------------------

def test_train_step_allocates_nothing_in_the_steady_state(rng):
    net = gd.MLP([64, 128, 32, 10], activation="relu", dtype="float32", seed=0)
    opt = optim.Adam(lr=1e-3)
    X = rng.standard_normal((64, 64)).astype(np.float32)
    T = rng.integers(0, 10, 64)
    for _ in range(3):              # workspace and optimizer state are made here
        net.train_step(X, T, opt)
    gc.collect()
    tracemalloc.start()
    try:
        # first traced calls: interpreter caches and dict tables settle (a dict whose
        # key is set and deleted on every step is rebuilt once its deleted slots run
        # out: ~1.5 KB that landed inside the measured window after only 10 warm-up
        # steps, when the busy marks still lived in the network's __dict__; they now
        # have a small dict of their own, see optim.busy_marks)
        for _ in range(200):
            net.train_step(X, T, opt)
        tracemalloc.reset_peak()
        start, _ = tracemalloc.get_traced_memory()
        for _ in range(100):
            net.train_step(X, T, opt)
        end, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The smallest buffer of a step (64 x 10 float32 = 2.5 KB) would show in the peak;
    # what remains is the returned float and the like.
    assert peak - start < 1024, (start, end, peak)
    assert end - start < 256, (start, end, peak)


# ---- predictions and evaluation ----------------------------------------------------

def test_predict_predict_proba_evaluate(rng):
    net = gd.MLP([4, 5, 3], activation="relu", dtype="float64")
    X = rng.standard_normal((9, 4))
    P = net.predict_proba(X)
    np.testing.assert_allclose(P.sum(axis=1), 1, rtol=1e-12)
    labels = net.predict(X)
    np.testing.assert_array_equal(labels, P.argmax(axis=1))
    result = net.evaluate(X, labels)
    assert result["accuracy"] == 1.0
    assert result["loss"] == pytest.approx(net.loss(X, labels))
    onehot = np.eye(3)[labels]
    assert net.evaluate(X, onehot)["loss"] == pytest.approx(result["loss"], rel=1e-12)

    binary = gd.MLP([4, 3, 1], output="sigmoid", dtype="float64")
    y = binary.predict(X)
    assert y.shape == (9,) and set(np.unique(y)) <= {0, 1}
    np.testing.assert_array_equal(y, (binary.forward(X)[:, 0] > 0.5).astype(int))

    reg = gd.MLP([4, 3, 1], output="identity", dtype="float64")
    np.testing.assert_array_equal(reg.predict(X), reg.forward(X)[:, 0])
    with pytest.raises(ValueError, match="classifier"):
        reg.predict_proba(X)
    assert "accuracy" not in reg.evaluate(X, rng.standard_normal(9))


# ---- bad input -----------------------------------------------------------------------

def test_bad_input_raises_clear_errors(rng):
    net = gd.MLP([4, 5, 3], dtype="float32")
    opt = optim.SGD(lr=0.1)
    X = rng.standard_normal((6, 4)).astype(np.float32)
    T = rng.integers(0, 3, 6)
    with pytest.raises(ValueError, match="features"):
        net.train_step(X[:, :3].copy(), T, opt)
    with pytest.raises(ValueError, match="labels for 6 samples"):
        net.train_step(X, T[:5], opt)
    with pytest.raises(ValueError, match="label 3"):
        net.train_step(X, np.array([0, 1, 2, 3, 0, 1]), opt)
    with pytest.raises(ValueError, match="label -1"):
        net.train_step(X, np.array([0, 1, 2, -1, 0, 1]), opt)
    with pytest.raises(TypeError, match="float64"):
        net.train_step(X.astype(np.float64), T, opt)
    with pytest.raises(TypeError, match="optimizer"):
        net.train_step(X, T, "adam")
    with pytest.raises(TypeError, match="labels must be integers"):
        net.train_step(X, T.astype(np.float32), opt)
    with pytest.raises(ValueError, match="shape"):
        net.train_step(X, np.zeros((6, 4), np.float32), opt)
    with pytest.raises(ValueError, match="2-D"):
        net.forward(X[0])
    with pytest.raises(ValueError, match="l2"):
        net.train_step(X, T, opt, l2=-1.0)
    assert opt.step_count == 0


# ---- parametrised activations and the regression losses ------------------------

@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("activation", PARAM_ACTIVATIONS)
def test_parametrised_activations_train_natively_as_the_reference(activation, n_threads,
                                                                  dtype, rng):
    # 512 x 32 x 160 multiply-adds give the step two threads, and the 512 x 160 outputs
    # split the elementwise passes between them
    native, ref = _pair([32, 160, 3], "identity", "huber", dtype,
                        activation=activation)
    opt_n, opt_r = optim.Adam(lr=1e-2), optim.Adam(lr=1e-2)
    X = rng.standard_normal((512, 32)).astype(dtype)
    T = rng.standard_normal((512, 3)).astype(dtype)
    for _ in range(5):
        loss_n = native.train_step(X, T, opt_n, n_threads=n_threads)
        loss_r = ref.train_step(X, T, opt_r)
    rtol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(native.params, ref.params, rtol=rtol, atol=rtol)
    assert loss_n == pytest.approx(loss_r, rel=rtol)
    np.testing.assert_allclose(native.forward(X), ref.forward(X), rtol=rtol, atol=rtol)


def test_a_parametrised_activation_changes_the_network(rng):
    """The parameters reach the native step: another slope, another gradient."""
    X = rng.standard_normal((20, 4))
    T = rng.standard_normal((20, 2))
    grads = []
    for slope in (0.01, 0.3):
        net = gd.MLP([4, 8, 2], activation=("leaky_relu", {"negative_slope": slope}),
                     output="identity", loss="mse", dtype="float64", seed=2)
        grads.append(net.gradient(X, T)[1])
        assert net.activations[0] == ("leaky_relu" if slope == 0.01
                                      else ("leaky_relu", {"negative_slope": slope}))
    assert not np.allclose(grads[0], grads[1])


@pytest.mark.parametrize("kwargs, match", [
    (dict(activation="swish"), "activation must be one of"),
    (dict(activation=("elu", {"alpha": 0.0})), "'alpha' must be"),
    (dict(activation=("elu", {"beta": 1.0})), "has no parameter 'beta'"),
    (dict(activation=("leaky_relu", {"negative_slope": -0.1})), "'negative_slope' must be"),
    (dict(activation=("gelu", {"approximate": "sigmoid"})), "'none' or 'tanh'"),
    (dict(activation=("softplus", {"threshold": float("nan")})), "'threshold' must be"),
    (dict(activation=[("silu", 1.0)]), "a name or a pair"),
    (dict(loss=("huber", {"delta": -1.0})), "'delta' must be"),
    (dict(loss=("mae", {"delta": 1.0})), "has no parameter 'delta'"),
    (dict(output="softmax", loss="poisson"), "does not go with"),
    (dict(output="elu", loss="cross_entropy"), "does not go with"),
])
def test_bad_activation_and_loss_specs_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        gd.MLP([3, 4, 2], **kwargs)


def test_specs_survive_a_checkpoint(tmp_path, rng):
    net = gd.MLP([4, 7, 5, 2], activation=[("leaky_relu", {"negative_slope": 0.2}),
                                           ("gelu", {"approximate": "tanh"})],
                 output=("softplus", {"beta": 2.0}), loss=("huber", {"delta": 0.25}),
                 dtype="float64", seed=4)
    X = rng.standard_normal((30, 4))
    T = rng.standard_normal((30, 2))
    net.fit(X, T, optimizer=optim.Adam(lr=1e-2), epochs=2, batch_size=8, progress=False)
    net.save(tmp_path / "net.npz")
    back = gd.load(tmp_path / "net.npz")
    assert back.activations == net.activations and back.loss_spec == net.loss_spec
    np.testing.assert_array_equal(back.forward(X), net.forward(X))
    assert back.loss(X, T) == net.loss(X, T)


def test_poisson_network_predicts_the_rate(rng):
    net = gd.MLP([3, 5, 1], activation="silu", loss="poisson", dtype="float64", seed=1)
    assert net.output == "identity"
    X = rng.standard_normal((6, 3))
    np.testing.assert_allclose(net.predict(X), np.exp(net.forward(X)[:, 0]), rtol=1e-15)


def test_keep_probabilities_and_output_backward_describe_the_step():
    net = gd.MLP([3, 4, 5, 2], dropout=[0.25, 0.0], output="sigmoid", loss="squared_error")
    assert net.keep_probabilities == (0.75, 1.0, 1.0)
    assert net.output_backward == "sigmoid"           # squared error: delta is dE/dY
    assert gd.MLP([3, 2], loss="cross_entropy").output_backward == "identity"
    assert gd.MLP([3, 1], output="sigmoid").output_backward == "identity"
    with pytest.raises(AttributeError):
        net.keep_probabilities = (1.0, 1.0, 1.0)
