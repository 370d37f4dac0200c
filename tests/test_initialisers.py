"""MLP(init=...): the named initialisers, callables, per-layer lists, seeding, dtypes,
and the unchanged default."""
import math

import numpy as np
import pytest

import gdcore as gd
from gdcore.network import INITIALIZERS


def old_default(sizes, activations, seed):
    """The initialisation gdcore always had, written out: He-uniform for relu layers,
    Glorot-uniform for the others, layer by layer from the seed's first child."""
    init_seq, _ = np.random.SeedSequence(seed).spawn(2)
    rng = np.random.default_rng(init_seq)
    out = []
    for n_in, n_out, act in zip(sizes[:-1], sizes[1:], activations):
        limit = math.sqrt(6.0 / n_in) if act == "relu" else math.sqrt(6.0 / (n_in + n_out))
        out.append(rng.uniform(-limit, limit, size=(n_in, n_out)))
    return out


@pytest.mark.parametrize("activation", ["relu", "tanh", ["relu", "sigmoid"]])
@pytest.mark.parametrize("init", [None, "default", [None, "default", None]])
def test_default_is_bitwise_unchanged(activation, init):
    sizes = [5, 7, 4, 3]
    net = gd.MLP(sizes, activation=activation, seed=11, dtype="float64", init=init)
    for layer, W in zip(net.layers, old_default(sizes, net.activations, 11)):
        np.testing.assert_array_equal(layer.W, W)
        assert not layer.b.any()


@pytest.mark.parametrize("name", [n for n in INITIALIZERS if n != "default"])
@pytest.mark.parametrize("backend", ["native", "reference"])
def test_float32_starts_as_rounded_float64(name, backend):
    a = gd.MLP([6, 5, 3], seed=2, dtype="float32", init=name, backend=backend)
    b = gd.MLP([6, 5, 3], seed=2, dtype="float64", init=name)
    np.testing.assert_array_equal(a.params, b.params.astype(np.float32))


@pytest.mark.parametrize("name, limit_or_std", [
    ("glorot_uniform", lambda fi, fo: math.sqrt(6 / (fi + fo))),
    ("he_uniform", lambda fi, fo: math.sqrt(6 / fi)),
    ("lecun_uniform", lambda fi, fo: math.sqrt(3 / fi)),
    ("glorot_normal", lambda fi, fo: math.sqrt(2 / (fi + fo))),
    ("he_normal", lambda fi, fo: math.sqrt(2 / fi)),
    ("lecun_normal", lambda fi, fo: math.sqrt(1 / fi)),
])
def test_distributions(name, limit_or_std):
    fi, fo = 300, 200
    W = gd.MLP([fi, fo], seed=0, dtype="float64", init=name, output="identity",
               loss="mse").layers[0].W
    scale = limit_or_std(fi, fo)
    if name.endswith("uniform"):
        assert np.abs(W).max() <= scale
        assert np.abs(W).max() > 0.999 * scale          # 60 000 draws reach the edge
        assert W.std() == pytest.approx(scale / math.sqrt(3), rel=0.02)
    else:
        assert W.std() == pytest.approx(scale, rel=0.02)
        assert np.abs(W).max() > 3.5 * scale             # untruncated tails
    assert abs(W.mean()) < 0.02 * scale


def test_zeros_and_seeding():
    assert not gd.MLP([3, 4, 2], init="zeros").params.any()
    a = gd.MLP([3, 4, 2], seed=5, init="he_normal").params
    b = gd.MLP([3, 4, 2], seed=5, init="he_normal").params
    c = gd.MLP([3, 4, 2], seed=6, init="he_normal").params
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_per_layer_list_and_callable():
    calls = []

    def ones_scaled(rng, n_in, n_out):
        calls.append((type(rng).__name__, n_in, n_out))
        return np.full((n_in, n_out), 1.0 / n_in)

    net = gd.MLP([3, 4, 2], seed=1, init=[ones_scaled, "zeros"], dtype="float64")
    assert calls == [("Generator", 3, 4)]
    np.testing.assert_array_equal(net.layers[0].W, np.full((3, 4), 1 / 3))
    assert not net.layers[1].W.any()
    # a callable drawing from the generator is seeded like the built-in ones
    draw = lambda rng, n_in, n_out: rng.standard_normal((n_in, n_out))
    p1 = gd.MLP([3, 4, 2], seed=1, init=draw).params
    p2 = gd.MLP([3, 4, 2], seed=1, init=draw).params
    np.testing.assert_array_equal(p1, p2)
    # layers draw in order from one generator: layer 1 follows layer 0's draws
    mixed = gd.MLP([3, 4, 2], seed=1, init=["he_uniform", "glorot_uniform"],
                   activation="relu", dtype="float64")
    default = gd.MLP([3, 4, 2], seed=1, activation="relu", dtype="float64")
    np.testing.assert_array_equal(mixed.params, default.params)


@pytest.mark.parametrize("init, error, match", [
    ("xavier", ValueError, "init must be one of"),
    (["zeros"], ValueError, "1 initialisers for 2 layers"),
    ([3, "zeros"], TypeError, "init"),
    (3.5, TypeError, "init"),
    (lambda rng, i, o: np.zeros((o, i)), ValueError, r"shape \(4, 3\), expected \(3, 4\)"),
    (lambda rng, i, o: np.full((i, o), np.nan), ValueError, "NaN"),
    (lambda rng, i, o: "weights", TypeError, "real numbers"),
])
def test_bad_init(init, error, match):
    with pytest.raises(error, match=match):
        gd.MLP([3, 4, 2], init=init)


def test_training_from_a_named_init_native_equals_reference():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 3))
    y = (X[:, 0] > 0).astype(int)
    nets = [gd.MLP([3, 5, 2], seed=3, init="lecun_normal", backend=b, dtype="float64")
            for b in ("native", "reference")]
    for net in nets:
        net.fit(X, y, epochs=3, batch_size=8)
    np.testing.assert_allclose(nets[0].params, nets[1].params, rtol=1e-10, atol=1e-12)
