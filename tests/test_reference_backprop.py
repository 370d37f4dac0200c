"""``gdcore.reference`` against central finite differences (float64) and against the
definitions written out element by element in plain Python.

Nets of 1, 2 and 3 dense layers are built from ``dense_forward`` / ``loss_delta`` /
``dense_backward`` exactly as a training step uses them: the output layer gets the
loss's canonical delta as dY with activation 'identity', every hidden layer gets dX of
the layer above with its own activation.
"""
import math

import numpy as np
import pytest

import gdcore.reference as ref
from gdcore import numerical_gradient

ACTIVATIONS = ["identity", "sigmoid", "tanh", "relu", "softmax"]

# case -> (loss name, paired output activation)
LOSS_CASES = {
    "squared_error": ("squared_error", "identity"),
    "mse": ("mse", "identity"),
    "ce_labels": ("cross_entropy", "softmax"),
    "ce_onehot": ("cross_entropy", "softmax"),
    "ce_soft": ("cross_entropy", "softmax"),
    # Rows that do not sum to 1: the delta is (Y s - T) / B with s the row sum.
    "ce_unnormalized": ("cross_entropy", "softmax"),
    "bce_hard": ("binary_cross_entropy", "sigmoid"),
    "bce_soft": ("binary_cross_entropy", "sigmoid"),
}

N_SAMPLES, N_IN, HIDDEN, N_OUT = 6, 3, (4, 5), 3
# Keep ReLU pre-activations at least this far from the kink at 0: a central difference
# perturbs them by at most h * max|input| ~ 1e-4.
KINK_MARGIN = 0.05
TOL = 1e-6


def rel_error(actual, numeric):
    """max |a - n| / max |n|: relative to the gradient's scale, so that components
    that are zero or tiny do not blow the measure up."""
    actual = np.asarray(actual, dtype=np.float64)
    numeric = np.asarray(numeric, dtype=np.float64)
    assert actual.shape == numeric.shape
    scale = max(np.max(np.abs(numeric), initial=0.0), np.finfo(np.float64).tiny)
    return np.max(np.abs(actual - numeric), initial=0.0) / scale


def make_targets(case, rng, n_samples, n_out):
    if case in ("squared_error", "mse"):
        return rng.normal(size=(n_samples, n_out))
    labels = np.arange(n_samples) % n_out
    rng.shuffle(labels)
    if case == "ce_labels":
        return labels
    if case == "ce_onehot":
        return np.eye(n_out)[labels]
    if case == "ce_soft":
        return rng.dirichlet(np.ones(n_out), size=n_samples)
    if case == "ce_unnormalized":
        return rng.uniform(0.1, 1.0, size=(n_samples, n_out))
    if case == "bce_hard":
        return rng.integers(0, 2, size=(n_samples, n_out)).astype(np.float64)
    return rng.uniform(0.0, 1.0, size=(n_samples, n_out))


def forward(X, Ws, bs, hidden, output):
    """Outputs of every layer, the input first."""
    outputs = [X]
    for i, (W, b) in enumerate(zip(Ws, bs)):
        f = output if i == len(Ws) - 1 else hidden
        outputs.append(ref.dense_forward(outputs[-1], W, b, f))
    return outputs


def pre_activations(X, Ws, bs, hidden):
    U, A = [], X
    for W, b in zip(Ws[:-1], bs[:-1]):
        U.append(A @ W + b)
        A = ref.activation(hidden, U[-1])
    return U


def backward(outputs, Ws, loss_name, T, hidden):
    value, D = ref.loss_delta(loss_name, outputs[-1], T)
    dWs, dbs = [None] * len(Ws), [None] * len(Ws)
    dY, f = D, "identity"
    for i in reversed(range(len(Ws))):
        dX, dWs[i], dbs[i] = ref.dense_backward(outputs[i], Ws[i], outputs[i + 1], dY, f)
        dY, f = dX, hidden
    return value, dWs, dbs, dX


def make_net(seed, n_layers, hidden):
    """A seeded net whose hidden pre-activations stay clear of ReLU's kink."""
    rng = np.random.default_rng(seed)
    sizes = [N_IN, *HIDDEN[:n_layers - 1], N_OUT]
    for _ in range(200):
        X = rng.normal(size=(N_SAMPLES, N_IN))
        Ws = [rng.normal(scale=1.5 / math.sqrt(m), size=(m, n))
              for m, n in zip(sizes[:-1], sizes[1:])]
        bs = [rng.normal(scale=0.5, size=n) for n in sizes[1:]]
        U = pre_activations(X, Ws, bs, hidden)
        if all(np.min(np.abs(u)) > KINK_MARGIN for u in U):
            return rng, X, Ws, bs
    raise AssertionError("could not draw a net away from the ReLU kink")


NET_CASES = [(n_layers, hidden) for n_layers in (1, 2, 3)
             for hidden in (ACTIVATIONS if n_layers > 1 else ["identity"])]


@pytest.mark.parametrize("case", list(LOSS_CASES))
@pytest.mark.parametrize("n_layers, hidden", NET_CASES,
                         ids=[f"{n}layers-{h}" for n, h in NET_CASES])
def test_backprop_matches_finite_differences(n_layers, hidden, case):
    loss_name, output = LOSS_CASES[case]
    rng, X, Ws, bs = make_net(1000 + 10 * n_layers + ACTIVATIONS.index(hidden), n_layers,
                              hidden)
    T = make_targets(case, rng, N_SAMPLES, N_OUT)

    outputs = forward(X, Ws, bs, hidden, output)
    value, dWs, dbs, dX = backward(outputs, Ws, loss_name, T, hidden)
    assert value == pytest.approx(ref.loss(loss_name, outputs[-1], T), rel=1e-14)

    def loss_with(X_, Ws_, bs_):
        return ref.loss(loss_name, forward(X_, Ws_, bs_, hidden, output)[-1], T)

    checks = [("X", dX, lambda x: loss_with(x, Ws, bs), X)]
    for i in range(n_layers):
        def with_W(w, i=i):
            return loss_with(X, Ws[:i] + [w] + Ws[i + 1:], bs)

        def with_b(b, i=i):
            return loss_with(X, Ws, bs[:i] + [b] + bs[i + 1:])

        checks += [(f"W{i}", dWs[i], with_W, Ws[i]), (f"b{i}", dbs[i], with_b, bs[i])]

    for what, analytic, f, point in checks:
        numeric = numerical_gradient(f, point)
        # A gradient that is zero everywhere would make the comparison vacuous.
        assert np.max(np.abs(numeric)) > 1e-8, what
        err = rel_error(analytic, numeric)
        assert err <= TOL, f"{what}: relative error {err:.2e}"


@pytest.mark.parametrize("name", ACTIVATIONS)
@pytest.mark.parametrize("shape", [(4, 5), (1, 1), (3, 1), (1, 6)])
def test_activation_backward_matches_finite_differences(name, shape):
    rng = np.random.default_rng(7)
    # |u| >= 0.1: clear of ReLU's kink.
    U = rng.uniform(0.1, 2.0, size=shape) * rng.choice([-1.0, 1.0], size=shape)
    dY = rng.normal(size=shape)

    numeric = numerical_gradient(lambda u: np.sum(dY * ref.activation(name, u)), U)
    analytic = ref.activation_backward(name, ref.activation(name, U), dY)
    if name != "softmax" or shape[1] > 1:  # softmax of one unit is constant
        assert np.max(np.abs(numeric)) > 1e-8
    assert rel_error(analytic, numeric) <= TOL


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_backward_of_the_output_layer_chain(name):
    """dense_backward's D equals activation_backward's result (delta_out exposes it)."""
    rng = np.random.default_rng(3)
    X, W, b = rng.normal(size=(5, 3)), rng.normal(size=(3, 4)), rng.normal(size=4)
    Y = ref.dense_forward(X, W, b, name)
    dY = rng.normal(size=Y.shape)
    D = np.empty_like(Y)
    dX, dW, db = ref.dense_backward(X, W, Y, dY, name, delta_out=D)
    expected = ref.activation_backward(name, Y, dY)
    np.testing.assert_array_equal(D, expected)
    np.testing.assert_allclose(dW, X.T @ expected, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(db, expected.sum(axis=0), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(dX, expected @ W.T, rtol=1e-12, atol=1e-14)
    dX2, dW2, db2 = ref.dense_backward(X, W, Y, dY, name, compute_dX=False)
    assert dX2 is None
    np.testing.assert_array_equal(dW2, dW)
    np.testing.assert_array_equal(db2, db)


# --- values against the definitions, element by element in Python floats ----------

def scalar_activation(name, row):
    if name == "identity":
        return list(row)
    if name == "sigmoid":
        return [1.0 / (1.0 + math.exp(-u)) for u in row]
    if name == "tanh":
        return [math.tanh(u) for u in row]
    if name == "relu":
        return [u if u > 0 else 0.0 for u in row]
    exps = [math.exp(u) for u in row]
    total = sum(exps)
    return [e / total for e in exps]


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_values_match_definitions(name, dtype):
    rng = np.random.default_rng(11)
    U = rng.uniform(-6, 6, size=(7, 5)).astype(dtype)
    Y = ref.activation(name, U)
    assert Y.dtype == dtype and Y.shape == U.shape
    expected = [scalar_activation(name, [float(u) for u in row]) for row in U]
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(Y, expected, rtol=rtol, atol=rtol * 1e-3)


def test_dense_forward_matches_definition(dtype):
    rng = np.random.default_rng(5)
    X = rng.normal(size=(4, 3)).astype(dtype)
    W = rng.normal(size=(3, 2)).astype(dtype)
    b = rng.normal(size=2).astype(dtype)
    for name in ACTIVATIONS:
        Y = ref.dense_forward(X, W, b, name)
        assert Y.dtype == dtype and Y.shape == (4, 2)
        # u_k = sum_j y_j w_jk + b_k
        U = [[sum(float(X[i, j]) * float(W[j, k]) for j in range(3)) + float(b[k])
              for k in range(2)] for i in range(4)]
        expected = [scalar_activation(name, row) for row in U]
        rtol = 1e-12 if dtype == np.float64 else 1e-5
        np.testing.assert_allclose(Y, expected, rtol=rtol, atol=rtol, err_msg=name)


def scalar_loss(name, Y, T):
    Y = [[float(y) for y in row] for row in Y]
    B = len(Y)
    if name == "cross_entropy" and np.ndim(T) == 1:
        return -sum(math.log(Y[i][int(T[i])]) for i in range(B)) / B
    T = [[float(t) for t in row] for row in T]
    pairs = [(y, t) for yr, tr in zip(Y, T) for y, t in zip(yr, tr)]
    if name == "squared_error":
        return sum(0.5 * (y - t) ** 2 for y, t in pairs) / B
    if name == "mse":
        return sum((y - t) ** 2 for y, t in pairs) / len(pairs)
    if name == "cross_entropy":
        return -sum(t * math.log(y) for y, t in pairs) / B
    return -sum(t * math.log(y) + (1 - t) * math.log(1 - y) for y, t in pairs) / B


def scalar_delta(name, Y, T):
    B, K = Y.shape
    Y = [[float(y) for y in row] for row in Y]
    if name == "cross_entropy" and np.ndim(T) == 1:
        T = [[1.0 if k == int(T[i]) else 0.0 for k in range(K)] for i in range(B)]
    T = [[float(t) for t in row] for row in T]
    if name == "mse":
        return [[2 * (y - t) / (B * K) for y, t in zip(yr, tr)] for yr, tr in zip(Y, T)]
    if name == "cross_entropy":
        return [[(y * sum(tr) - t) / B for y, t in zip(yr, tr)] for yr, tr in zip(Y, T)]
    return [[(y - t) / B for y, t in zip(yr, tr)] for yr, tr in zip(Y, T)]


# Soft cross-entropy rows of one class are left out: softmax of one output is constant.
LOSS_SHAPES = [(case, n, k) for case in LOSS_CASES
               for n, k in [(1, 1), (5, 3), (9, 1), (4, 6)]
               if k > 1 or case == "ce_labels" or not case.startswith("ce")]


@pytest.mark.parametrize("case, n_samples, n_out", LOSS_SHAPES)
def test_loss_and_delta_match_definitions(case, n_samples, n_out, dtype):
    loss_name, output = LOSS_CASES[case]
    rng = np.random.default_rng(17)
    Y = ref.activation(output, rng.normal(size=(n_samples, n_out)).astype(dtype))
    T = make_targets(case, rng, n_samples, n_out)
    if T.dtype.kind == "f":
        T = T.astype(dtype)

    value, D = ref.loss_delta(loss_name, Y, T)
    assert isinstance(value, float)
    assert D.dtype == dtype and D.shape == Y.shape
    # The loss is accumulated in float64 from the stored values; Y - T of
    # squared_error/mse is formed in the input dtype.
    rtol = 1e-12 if dtype == np.float64 else 1e-6
    assert value == pytest.approx(scalar_loss(loss_name, Y, T), rel=rtol)
    assert ref.loss(loss_name, Y, T) == value
    np.testing.assert_allclose(D, scalar_delta(loss_name, Y, T),
                               rtol=1e-12 if dtype == np.float64 else 1e-6, atol=0)


def test_integer_labels_and_one_hot_rows_agree(dtype):
    rng = np.random.default_rng(8)
    Y = ref.activation("softmax", rng.normal(size=(6, 4)).astype(dtype))
    labels = np.array([0, 3, 1, 1, 2, 3])
    for label_dtype in (np.int64, np.int32, np.uint8):
        lv, LD = ref.loss_delta("cross_entropy", Y, labels.astype(label_dtype))
        ov, OD = ref.loss_delta("cross_entropy", Y, np.eye(4, dtype=dtype)[labels])
        assert lv == pytest.approx(ov, rel=1e-12)
        np.testing.assert_allclose(LD, OD, rtol=1e-6 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("name", ["squared_error", "mse", "binary_cross_entropy"])
def test_one_output_takes_one_dimensional_targets(name, dtype):
    rng = np.random.default_rng(9)
    Y = ref.activation("sigmoid", rng.normal(size=(5, 1)).astype(dtype))
    t = rng.uniform(size=5).astype(dtype)
    v1, D1 = ref.loss_delta(name, Y, t)
    v2, D2 = ref.loss_delta(name, Y, t.reshape(5, 1))
    assert v1 == v2
    np.testing.assert_array_equal(D1, D2)


@pytest.mark.parametrize("hidden", ACTIVATIONS)
@pytest.mark.parametrize("case", ["squared_error", "ce_labels", "bce_soft"])
def test_float32_backprop_agrees_with_float64(hidden, case):
    loss_name, output = LOSS_CASES[case]
    rng, X, Ws, bs = make_net(77, 3, hidden)
    T = make_targets(case, rng, N_SAMPLES, N_OUT)
    if T.dtype.kind == "f":
        T = T.astype(np.float32)
    # Halved weights keep the outputs away from saturation, where float32's 1 - y
    # has few significant digits left whatever the implementation.
    X, Ws, bs = (X.astype(np.float32), [(0.5 * w).astype(np.float32) for w in Ws],
                 [(0.5 * b).astype(np.float32) for b in bs])
    results = {}
    for dt in (np.float32, np.float64):
        Td = T.astype(dt) if T.dtype.kind == "f" else T
        outs = forward(X.astype(dt), [w.astype(dt) for w in Ws], [b.astype(dt) for b in bs],
                       hidden, output)
        value, dWs, dbs, dX = backward(outs, [w.astype(dt) for w in Ws], loss_name, Td, hidden)
        assert all(g.dtype == dt for g in [*dWs, *dbs, dX])
        results[dt] = (value, [*dWs, *dbs, dX])
    v32, g32 = results[np.float32]
    v64, g64 = results[np.float64]
    assert v32 == pytest.approx(v64, rel=1e-5)
    for a, e in zip(g32, g64):
        assert rel_error(a, e) <= 1e-4


# --- numerical_gradient itself ------------------------------------------------------

def test_numerical_gradient_matches_analytic_gradient():
    x = np.random.default_rng(2).uniform(-2, 2, size=(3, 4))
    x0 = x.copy()
    seen = []

    def f(z):
        seen.append((type(z), z.dtype, z.shape))
        return np.sum(np.sin(z) * z ** 2)

    g = numerical_gradient(f, x)
    np.testing.assert_array_equal(x, x0)
    assert g.shape == x.shape and g.dtype == np.float64
    assert all(s == (np.ndarray, np.float64, (3, 4)) for s in seen)
    assert len(seen) == 2 * x.size
    assert rel_error(g, np.cos(x) * x ** 2 + 2 * x * np.sin(x)) <= 1e-9


def test_numerical_gradient_of_a_scalar_is_a_float():
    g = numerical_gradient(lambda z: z ** 3, 1.3)
    assert isinstance(g, float)
    assert g == pytest.approx(3 * 1.3 ** 2, rel=1e-9)


def test_numerical_gradient_error_is_second_order_in_h():
    f, x = (lambda z: float(np.exp(z).sum())), np.array([0.7])
    errors = [abs(numerical_gradient(f, x, h=h)[0] - math.exp(0.7)) for h in (1e-2, 1e-3)]
    # Central differences: error ~ h^2 f'''/6, so a 10x smaller h gives ~100x less.
    assert errors[0] == pytest.approx(1e-4 * math.exp(0.7) / 6, rel=1e-2)
    assert 50 < errors[0] / errors[1] < 200


@pytest.mark.parametrize("h", [0.0, -1e-5, float("nan"), float("inf")])
def test_numerical_gradient_rejects_bad_step(h):
    with pytest.raises(ValueError, match=r"\bh\b"):
        numerical_gradient(lambda z: float(np.sum(z)), np.ones(2), h=h)


def test_numerical_gradient_rejects_non_callable():
    with pytest.raises(TypeError, match=r"\bf\b"):
        numerical_gradient(3.0, np.ones(2))
