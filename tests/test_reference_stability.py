"""Numerical stability of ``gdcore.reference``: saturated activations and losses stay
finite and correct without a floating-point warning, and an empty batch has a NaN loss.

Overflow, division by zero and invalid operations raise inside ``no_fp_warnings``;
underflow to 0 (exp(-1e4)) is the correct result and allowed.
"""
import contextlib
import math
import warnings

import numpy as np
import pytest

import gdcore.reference as ref

BIG = 1e4


@contextlib.contextmanager
def no_fp_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="raise", divide="raise", invalid="raise"):
            yield


def test_sigmoid_saturates_to_exact_zero_and_one(dtype):
    U = np.array([[BIG, -BIG, 1e3, -1e3, 1e38, -1e38, 0.0]], dtype=dtype)
    with no_fp_warnings():
        Y = ref.activation("sigmoid", U)
    assert Y.dtype == dtype
    np.testing.assert_array_equal(Y, [[1, 0, 1, 0, 1, 0, 0.5]])


@pytest.mark.parametrize("scale", [1.0, 20.0, 80.0])
def test_sigmoid_matches_stable_definition_in_the_tails(scale, dtype):
    u = np.linspace(-1, 1, 41) * scale
    if dtype == np.float32:
        u = u[np.abs(u) < 80]  # keep exp(-|u|) normal in float32
    U = u.astype(dtype).reshape(1, -1)
    with no_fp_warnings():
        Y = ref.activation("sigmoid", U)
    # sigmoid(u) = 1 / (1 + e^-u) for u >= 0 and e^u / (1 + e^u) for u < 0.
    expected = [1 / (1 + math.exp(-x)) if x >= 0 else math.exp(x) / (1 + math.exp(x))
                for x in U[0].astype(np.float64)]
    np.testing.assert_allclose(Y[0], expected, rtol=1e-13 if dtype == np.float64 else 1e-6,
                               atol=0)
    # Symmetry: sigmoid(-u) = 1 - sigmoid(u), exactly representable near the middle.
    with no_fp_warnings():
        Yneg = ref.activation("sigmoid", -U)
    mid = np.abs(U[0]) < 1
    np.testing.assert_allclose(Yneg[0][mid], 1 - Y[0][mid], rtol=1e-6)


def test_tanh_relu_identity_at_large_magnitudes(dtype):
    U = np.array([[BIG, -BIG, 1e30, -1e30]], dtype=dtype)
    with no_fp_warnings():
        np.testing.assert_array_equal(ref.activation("tanh", U), [[1, -1, 1, -1]])
        np.testing.assert_array_equal(ref.activation("relu", U),
                                      np.array([[BIG, 0, 1e30, 0]], dtype=dtype))
        np.testing.assert_array_equal(ref.activation("identity", U), U)


def test_softmax_saturates_to_one_hot(dtype):
    U = np.array([[BIG, 0.0, -BIG],
                  [-BIG, BIG, BIG - 1e3],
                  [-BIG, -BIG, BIG],
                  [BIG, BIG, -BIG],
                  [-BIG, -BIG, -BIG],
                  [1e30, -1e30, 0.0]], dtype=dtype)
    with no_fp_warnings():
        Y = ref.activation("softmax", U)
    assert Y.dtype == dtype
    np.testing.assert_array_equal(Y[[0, 1, 2, 5]], [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0]])
    np.testing.assert_array_equal(Y[3], [0.5, 0.5, 0])
    np.testing.assert_allclose(Y[4], [1 / 3] * 3, rtol=1e-6)


def test_softmax_is_invariant_to_a_large_shift():
    rng = np.random.default_rng(4)
    U = rng.normal(size=(5, 4))
    with no_fp_warnings():
        Y = ref.activation("softmax", U)
        for shift in (BIG, -BIG, 700.0, -800.0):
            # U + shift is rounded to ~1e-12 absolute: the result moves by as much.
            Ys = ref.activation("softmax", U + shift)
            np.testing.assert_allclose(Ys, Y, rtol=1e-9)
    np.testing.assert_allclose(Y.sum(axis=1), 1, rtol=1e-15)


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "softmax", "relu", "identity"])
def test_backward_through_saturated_outputs_is_finite(name, dtype):
    U = np.array([[BIG, -BIG, 3.0], [-BIG, 0.5, BIG]], dtype=dtype)
    dY = np.array([[1.0, -2.0, 0.5], [3.0, -1.0, 2.0]], dtype=dtype)
    with no_fp_warnings():
        Y = ref.activation(name, U)
        dU = ref.activation_backward(name, Y, dY)
    assert np.all(np.isfinite(dU))
    if name in ("sigmoid", "tanh"):
        # The derivative vanishes where the output saturates.
        assert dU[0, 0] == 0 and dU[0, 1] == 0 and dU[1, 0] == 0 and dU[1, 2] == 0


@pytest.mark.parametrize("layer_activation", ["sigmoid", "softmax", "tanh"])
def test_dense_layer_with_huge_pre_activations(layer_activation, dtype):
    X = np.array([[1.0, -1.0], [2.0, 0.5]], dtype=dtype)
    W = np.array([[BIG, -BIG, 0.0], [-BIG, BIG, 1.0]], dtype=dtype)
    b = np.zeros(3, dtype=dtype)
    with no_fp_warnings():
        Y = ref.dense_forward(X, W, b, layer_activation)
        dX, dW, db = ref.dense_backward(X, W, Y, np.ones_like(Y), layer_activation)
    assert all(np.all(np.isfinite(a)) for a in (Y, dX, dW, db))
    if layer_activation == "softmax":
        np.testing.assert_array_equal(Y, [[1, 0, 0], [1, 0, 0]])


def test_saturated_cross_entropy_is_finite(dtype):
    with no_fp_warnings():
        Y = ref.activation("softmax", np.array([[BIG, 0, -BIG], [-BIG, BIG, 0]], dtype=dtype))
        right, D_right = ref.loss_delta("cross_entropy", Y, np.array([0, 1]))
        wrong, D_wrong = ref.loss_delta("cross_entropy", Y, np.array([2, 0]))
        wrong_rows = ref.loss("cross_entropy", Y, np.eye(3, dtype=dtype)[[2, 0]])
    assert right == 0
    # log(0) is clipped: large and finite.  It would be 1e4 without the clipping
    # (log-softmax of the pre-activations), and is > 80 for either dtype's clip.
    assert math.isfinite(wrong) and wrong > 80
    assert wrong_rows == wrong
    assert np.all(np.isfinite(D_right)) and np.all(np.isfinite(D_wrong))
    np.testing.assert_array_equal(D_wrong, (Y - np.eye(3, dtype=dtype)[[2, 0]]) / 2)


def test_saturated_binary_cross_entropy_is_finite(dtype):
    with no_fp_warnings():
        Y = ref.activation("sigmoid", np.array([[BIG, -BIG], [-BIG, BIG]], dtype=dtype))
        right, D_right = ref.loss_delta("binary_cross_entropy", Y,
                                        np.array([[1, 0], [0, 1]], dtype=dtype))
        wrong, D_wrong = ref.loss_delta("binary_cross_entropy", Y,
                                        np.array([[0, 1], [1, 0]], dtype=dtype))
        half = ref.loss("binary_cross_entropy", Y, np.full((2, 2), 0.5, dtype=dtype))
    assert right == 0
    assert math.isfinite(wrong) and wrong > 80
    assert math.isfinite(half) and half > 40
    np.testing.assert_array_equal(D_right, 0)
    np.testing.assert_array_equal(D_wrong, [[0.5, -0.5], [-0.5, 0.5]])


@pytest.mark.parametrize("name", ["squared_error", "mse"])
def test_squared_losses_of_large_outputs_are_finite(name, dtype):
    Y = np.array([[BIG, -BIG], [1e20, 0.0]], dtype=dtype)
    T = np.zeros_like(Y)
    with no_fp_warnings():
        value, D = ref.loss_delta(name, Y, T)
    # (1e20)^2 = 1e40 overflows float32 but not the float64 accumulator.
    assert math.isfinite(value)
    scale = 0.5 / 2 if name == "squared_error" else 1 / 4
    assert value == pytest.approx(scale * (2 * BIG ** 2 + float(dtype.type(1e20)) ** 2),
                                  rel=1e-6)
    assert np.all(np.isfinite(D))


LOSS_TARGETS = {
    "squared_error": lambda dt, k: np.zeros((0, k), dtype=dt),
    "mse": lambda dt, k: np.zeros((0, k), dtype=dt),
    "binary_cross_entropy": lambda dt, k: np.zeros((0, k), dtype=dt),
    "cross_entropy": lambda dt, k: np.zeros(0, dtype=np.int64),
    "cross_entropy_rows": lambda dt, k: np.zeros((0, k), dtype=dt),
}


@pytest.mark.parametrize("case", list(LOSS_TARGETS))
@pytest.mark.parametrize("n_outputs", [1, 3])
def test_loss_of_an_empty_batch_is_nan(case, n_outputs, dtype):
    name = case.replace("_rows", "")
    Y = np.zeros((0, n_outputs), dtype=dtype)
    T = LOSS_TARGETS[case](dtype, n_outputs)
    with no_fp_warnings():
        value = ref.loss(name, Y, T)
        value2, D = ref.loss_delta(name, Y, T)
    assert isinstance(value, float) and math.isnan(value)
    assert math.isnan(value2)
    assert D.shape == (0, n_outputs) and D.dtype == dtype


def test_empty_batch_through_a_layer(dtype):
    X = np.zeros((0, 3), dtype=dtype)
    W = np.ones((3, 2), dtype=dtype)
    b = np.ones(2, dtype=dtype)
    with no_fp_warnings():
        for name in ("identity", "sigmoid", "tanh", "relu", "softmax"):
            Y = ref.dense_forward(X, W, b, name)
            assert Y.shape == (0, 2) and Y.dtype == dtype
            dX, dW, db = ref.dense_backward(X, W, Y, np.zeros_like(Y), name)
            assert dX.shape == (0, 3)
            np.testing.assert_array_equal(dW, np.zeros((3, 2)))
            np.testing.assert_array_equal(db, np.zeros(2))


@pytest.mark.parametrize("name", ["adagrad", "adadelta", "rmsprop", "adam", "adamw"])
def test_adaptive_optimizers_with_zero_gradients_stay_finite(name, dtype):
    """A gradient of exactly 0 divides 0 by eps, never by 0."""
    params = np.linspace(-1, 1, 5).astype(dtype)
    before = params.copy()
    options = dict(centered=True, momentum=0.9) if name == "rmsprop" else {}
    if name in ("adam", "adamw"):
        options["amsgrad"] = True
    state = ref.optimizer_state(name, params, **options)
    step = {"step": 1} if name in ("adagrad", "adam", "adamw") else {}
    with no_fp_warnings():
        getattr(ref, f"{name}_update")(params, np.zeros_like(params), **state, **step, **(
            options if name != "adamw" else dict(options, weight_decay=0.0)))
    np.testing.assert_array_equal(params, before)
    for buf in state.values():
        assert np.all(np.isfinite(buf))


def test_adam_bias_correction_at_a_late_step_is_finite(dtype):
    params = np.ones(3, dtype=dtype)
    state = ref.optimizer_state("adam", params)
    with no_fp_warnings():
        ref.adam_update(params, np.full(3, 0.5, dtype=dtype), **state, step=10**6)
    assert np.all(np.isfinite(params))
