"""The instruction-set builds of the native kernels, and the accuracy of their exp/tanh.

``gdcore._native_baseline``, ``_native_avx2`` and ``_native_avx512`` compile the same
source with different ``-m`` flags and ``-ffp-contract=off``: they must give the same
bits for every kernel, on ordinary and on extreme inputs (only the vector width
differs).  Builds this CPU cannot run are skipped; a build it can run must exist (on
x86-64 every one is built), so a missing build fails instead of dropping its cases.

The exp-based activations are also checked against a higher-precision NumPy
computation (np.longdouble): error in ulp, NaN propagation, limits at +-inf, exact
saturation.
"""
import importlib
import os
import platform
import warnings

import numpy as np
import pytest

import gdcore.kernels as K
from gdcore import _cpu

F32, F64 = np.dtype(np.float32), np.dtype(np.float64)
ACTIVATIONS = ["identity", "sigmoid", "tanh", "relu", "softmax"]
LOSSES = ["squared_error", "mse", "cross_entropy", "binary_cross_entropy"]


def _load_builds():
    builds, missing = {}, []
    for isa in _cpu.supported_isas():
        try:
            builds[isa] = importlib.import_module(f"gdcore._native_{isa}")
        except ImportError:
            missing.append(isa)
    return builds, missing


BUILDS, MISSING = _load_builds()
X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")


def test_every_build_this_cpu_runs_exists():
    """setup.py builds every instruction set on x86-64; one that fails to import would
    otherwise silently drop its cases from this module."""
    assert "baseline" in BUILDS
    if X86:
        assert MISSING == []

OTHERS = [isa for isa in BUILDS if isa != "baseline"]


@pytest.fixture(params=OTHERS or [pytest.param(None, marks=pytest.mark.skip(
    reason="only the baseline build runs on this CPU"))])
def isa(request):
    return request.param


def test_supported_isas_and_the_build_in_use():
    supported = _cpu.supported_isas()
    assert supported[-1] == "baseline"
    assert set(supported) <= {"avx512", "avx2", "baseline"}
    assert "baseline" in BUILDS
    # gdcore.kernels uses the best importable build (unless GDCORE_ISA forces one)
    forced = os.environ.get("GDCORE_ISA", "").strip().lower()
    assert K.ISA == (forced or next(i for i in supported if i in BUILDS))
    assert K._native is BUILDS[K.ISA]
    for module in BUILDS.values():
        assert module.COMPILED_CONSTANTS == BUILDS["baseline"].COMPILED_CONSTANTS


# --- bit comparisons -----------------------------------------------------------------------

def assert_same_bits(a, b, what):
    """Bitwise equal, NaN positions included; NaN payloads are not compared (IEEE 754
    leaves them unspecified), the sign of zero is."""
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape and a.dtype == b.dtype, what
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    np.testing.assert_array_equal(nan_a, nan_b, err_msg=f"{what}: NaN positions differ")
    ints = np.uint32 if a.dtype == F32 else np.uint64
    ia, ib = a.view(ints)[~nan_a], b.view(ints)[~nan_b]
    if not np.array_equal(ia, ib):
        i = np.flatnonzero(ia != ib)[0]
        pytest.fail(f"{what}: {a[~nan_a][i]!r} vs {b[~nan_b][i]!r} (of {ia.size} values, "
                    f"{np.count_nonzero(ia != ib)} differ)")


def extreme_values(dtype):
    """Ordinary values mixed with the edges of exp/tanh/sigmoid in both dtypes, in an
    array whose length is not a multiple of any vector width."""
    info = np.finfo(dtype)
    special = [0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 0.625, -0.625, 0.6249999, 1e-4, -1e-4,
               1e4, -1e4, 88.7, -88.7, 88.72, 88.73, 89.0, -89.0, -103.9, -104.0, -105.0,
               709.0, -709.0, 709.78, 709.8, -745.1, -746.0, 800.0, -800.0, 20.0, -20.0,
               9.0, -9.0, 17.0, -17.0, 44.0, -44.0, 1e30, -1e30,
               float(info.max), -float(info.max), float(info.tiny), -float(info.tiny),
               float(info.smallest_subnormal), -float(info.smallest_subnormal),
               float(info.tiny) / 3, -float(info.tiny) / 7,
               np.inf, -np.inf, np.nan, -np.nan]
    rng = np.random.default_rng(0)
    ordinary = np.concatenate([rng.normal(0, 3, 600), rng.uniform(-120, 120, 600),
                               rng.uniform(-800, 800, 300)])
    with np.errstate(over="ignore"):
        values = np.concatenate([np.array(special, dtype=np.float64).astype(dtype),
                                 ordinary.astype(dtype)])
    return rng.permutation(values)[: len(values) - (len(values) % 2 == 0)]


def _act(module, name, U, n_threads=1):
    Y = np.full_like(U, 7.0)
    module.activation_forward(K._ACT[name], U, Y, n_threads)
    return Y


def _act_backward(module, name, Y, dY, n_threads=1):
    D = np.full_like(Y, 7.0)
    module.activation_backward(K._ACT[name], Y, dY, D, n_threads)
    return D


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activations_are_bitwise_identical_across_builds(isa, name, dtype):
    base, other = BUILDS["baseline"], BUILDS[isa]
    values = extreme_values(dtype)
    # as one row (softmax over everything), as a column (softmax of single values) and
    # as rows of 13 (softmax with mixed extremes per row)
    n13 = len(values) // 13 * 13
    dY = np.random.default_rng(1).normal(size=values.shape).astype(dtype)
    for U, dU in ((values.reshape(1, -1), dY.reshape(1, -1)),
                  (values.reshape(-1, 1), dY.reshape(-1, 1)),
                  (values[:n13].reshape(-1, 13), dY[:n13].reshape(-1, 13))):
        Y_base, Y_other = _act(base, name, U), _act(other, name, U)
        assert_same_bits(Y_other, Y_base, f"{isa} {name} forward {U.shape}")
        # backward from the outputs, and from raw extreme values as "outputs"
        for Y in (Y_base, U):
            assert_same_bits(_act_backward(other, name, Y, dU),
                             _act_backward(base, name, Y, dU),
                             f"{isa} {name} backward {U.shape}")
        # extreme upstream gradients as well
        assert_same_bits(_act_backward(other, name, Y_base, U),
                         _act_backward(base, name, Y_base, U),
                         f"{isa} {name} backward of extreme dY {U.shape}")


def test_activation_build_results_do_not_depend_on_threads_or_alignment(isa, dtype):
    """Vector loops have peeled heads and tails: start the arrays at every offset."""
    base, other = BUILDS["baseline"], BUILDS[isa]
    values = np.resize(extreme_values(dtype), 70001)
    for offset in range(0, 9):
        U = values[offset:].reshape(1, -1)
        for name in ("sigmoid", "tanh", "relu"):
            Y = _act(other, name, U, n_threads=2)
            assert_same_bits(Y, _act(base, name, U, n_threads=1),
                             f"{isa} {name} offset {offset}")


def _loss_inputs(name, targets, shape, dtype, seed=2):
    rng = np.random.default_rng(seed)
    U = rng.normal(0, 6, shape)
    if name in ("cross_entropy",):
        U = U - U.max(axis=1, keepdims=True)
        Y = np.exp(U) / np.exp(U).sum(axis=1, keepdims=True)
    elif name == "binary_cross_entropy":
        Y = 1 / (1 + np.exp(-U))
    else:
        Y = U
    Y = Y.astype(dtype)
    Y.reshape(-1)[::17] = 0.0          # saturated outputs: clipped logarithms
    Y.reshape(-1)[5::19] = 1.0
    if targets == "labels":
        return Y, rng.integers(0, shape[1], shape[0]).astype(np.int64)
    if targets == "soft":
        return Y, rng.dirichlet(np.ones(shape[1]), shape[0]).astype(dtype)
    if name == "binary_cross_entropy":
        return Y, rng.uniform(0, 1, shape).astype(dtype)
    return Y, rng.normal(size=shape).astype(dtype)


LOSS_CASES = [("squared_error", "rows"), ("mse", "rows"), ("cross_entropy", "labels"),
              ("cross_entropy", "soft"), ("binary_cross_entropy", "rows")]


@pytest.mark.parametrize("shape", [(1, 1), (7, 3), (300, 33)], ids=str)
@pytest.mark.parametrize("name, targets", LOSS_CASES)
def test_losses_are_bitwise_identical_across_builds(isa, name, targets, shape, dtype):
    Y, T = _loss_inputs(name, targets, shape, dtype)
    results = []
    for module in (BUILDS["baseline"], BUILDS[isa]):
        code = K._LOSS[name]
        D = np.full_like(Y, 7.0)
        if targets == "labels":
            value = module.loss_delta_labels(code, Y, T, D, 1)
            value_only = module.loss_delta_labels(code, Y, T, None, 1)
        else:
            value = module.loss_delta_targets(code, Y, T, D, 1)
            value_only = module.loss_delta_targets(code, Y, T, None, 1)
        assert value_only == value
        results.append((np.float64(value), D))
    assert_same_bits(results[1][0], results[0][0], f"{isa} {name} loss")
    assert_same_bits(results[1][1], results[0][1], f"{isa} {name} delta")
    assert np.isfinite(results[0][0])


@pytest.mark.parametrize("name", LOSSES)
def test_losses_of_extreme_outputs_are_bitwise_identical_across_builds(isa, name, dtype):
    """Outputs far outside their activation's range, infinities and NaN (clipped
    logarithms, overflowing squares): the builds still agree."""
    Y = extreme_values(dtype)
    Y = Y[: len(Y) // 3 * 3].reshape(-1, 3).copy()
    rng = np.random.default_rng(6)
    T = rng.uniform(0, 1, Y.shape).astype(dtype)
    labels = rng.integers(0, 3, Y.shape[0]).astype(np.int64)
    results = []
    for module in (BUILDS["baseline"], BUILDS[isa]):
        code = K._LOSS[name]
        D = np.full_like(Y, 7.0)
        with np.errstate(all="ignore"):
            value = module.loss_delta_targets(code, Y, T, D, 1)
        results.append([np.float64(value), D])
        if name == "cross_entropy":
            D = np.full_like(Y, 7.0)
            value = module.loss_delta_labels(code, Y, labels, D, 1)
            results[-1] += [np.float64(value), D]
    for got, want in zip(results[1], results[0]):
        assert_same_bits(got, want, f"{isa} {name} extreme outputs")


@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "no-bias"])
@pytest.mark.parametrize("name", ACTIVATIONS)
def test_dense_layers_are_bitwise_identical_across_builds(isa, name, with_bias, dtype):
    """The GEMMs are the same (SciPy's BLAS); the epilogues and deltas must agree."""
    rng = np.random.default_rng(3)
    X = rng.uniform(-1, 1, (37, 19)).astype(dtype)
    W = rng.uniform(-1, 1, (19, 70)).astype(dtype)
    b = (rng.uniform(-1, 1, 70) * 30).astype(dtype) if with_bias else None
    dY = rng.uniform(-1, 1, (37, 70)).astype(dtype)
    # extreme pre-activations through a 1x1 identity weight: U = x + b exactly
    x = extreme_values(dtype).reshape(-1, 1)
    one = np.ones((1, 1), dtype=dtype)
    b1 = np.array([0.5], dtype=dtype) if with_bias else None
    results = {}
    for label, module in (("baseline", BUILDS["baseline"]), (isa, BUILDS[isa])):
        code = K._ACT[name]
        Y = np.full((37, 70), 7.0, dtype=dtype)
        module.dense_forward(code, X, W, b, Y, 1)
        Yx = np.full((x.shape[0], 1), 7.0, dtype=dtype)
        with np.errstate(all="ignore"):
            module.dense_forward(code, x, one, b1, Yx, 1)
        delta = None if name == "identity" else np.full_like(Y, 7.0)
        dX, dW = np.full_like(X, 7.0), np.full_like(W, 7.0)
        db = np.full(70, 7.0, dtype=dtype)
        module.dense_backward(code, X, W, Y, dY, delta, dX, dW, db, 1)
        results[label] = dict(Y=Y, Yx=Yx, dX=dX, dW=dW, db=db,
                              delta=delta if delta is not None else dY)
    for key in results["baseline"]:
        assert_same_bits(results[isa][key], results["baseline"][key], f"{isa} {name} {key}")


OPT_CASES = [
    ("sgd", dict(lr=0.1)),
    ("sgd", dict(lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01)),
    ("sgd", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.1)),
    ("adagrad", dict(lr=0.1, lr_decay=0.01, weight_decay=0.1, initial_accumulator_value=0.1)),
    ("adadelta", dict()),
    ("adadelta", dict(lr=0.5, rho=0.95, weight_decay=0.01)),
    ("rmsprop", dict()),
    ("rmsprop", dict(momentum=0.9)),
    ("rmsprop", dict(centered=True, weight_decay=0.01)),
    ("rmsprop", dict(momentum=0.5, centered=True, alpha=0.3)),
    ("adam", dict(weight_decay=0.1)),
    ("adam", dict(amsgrad=True, betas=(0.3, 0.5))),
    ("adamw", dict()),
    ("adamw", dict(amsgrad=True, weight_decay=0.1)),
    ("nadam", dict(weight_decay=0.1)),
    ("nadam", dict(weight_decay=0.1, decoupled_weight_decay=True, betas=(0.3, 0.5))),
    ("adamax", dict(weight_decay=0.1)),
    ("radam", dict(weight_decay=0.1, betas=(0.8, 0.9))),
    ("radam", dict(weight_decay=0.1, decoupled_weight_decay=True)),
    ("rprop", dict(step_sizes=(1e-3, 0.1))),
]
STATE_OPTIONS = ("momentum", "centered", "amsgrad", "initial_accumulator_value")


@pytest.mark.parametrize("name, options", OPT_CASES,
                         ids=[f"{n}-{i}" for i, (n, _) in enumerate(OPT_CASES)])
def test_optimizer_updates_are_bitwise_identical_across_builds(isa, name, options, dtype):
    state_kw = {k: v for k, v in options.items() if k in STATE_OPTIONS}
    update_kw = {k: v for k, v in options.items() if k != "initial_accumulator_value"}
    n = 1003                      # not a multiple of any vector width
    runs = []
    for module in (BUILDS["baseline"], BUILDS[isa]):
        rng = np.random.default_rng(4)
        params = rng.normal(size=n).astype(dtype)
        params[::50] = 0.0
        state = K.optimizer_state(name, params, **state_kw)
        update = getattr(module, f"{name}_update")
        for step in range(1, 9 if name == "radam" else 6):     # RAdam rectifies from 6
            with np.errstate(over="ignore"):
                g = (rng.normal(size=n) * 10.0 ** rng.integers(-20, 20, n)).astype(dtype)
            g[::7] = 0.0
            kw = dict(update_kw) if name in ("adadelta", "rmsprop", "rprop") \
                else dict(update_kw, step=step)
            with np.errstate(all="ignore"):
                assert update(params, g, **state, **kw, n_threads=1) is params
        runs.append((params, state))
    (p0, s0), (p1, s1) = runs
    assert_same_bits(p1, p0, f"{isa} {name} params")
    for key in s0:
        assert_same_bits(s1[key], s0[key], f"{isa} {name} {key}")


# --- accuracy of the exp-based activations ----------------------------------------------

# The largest error allowed for sigmoid and tanh, in units in the last place of the
# correctly rounded result.
MAX_ULP = 2.5   # sigmoid of negative x is e / (1 + e): three roundings on exp's 1 ulp
LD = np.longdouble


def _exact_sigmoid(x):
    x = x.astype(LD)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _exact_tanh(x):
    return np.tanh(x.astype(LD))


def ulp_errors(got, exact, dtype):
    """|got - exact| in ulp of the exact value rounded to dtype (subnormal spacing
    near 0)."""
    rounded = exact.astype(dtype)
    spacing = np.spacing(np.abs(rounded)).astype(LD)
    return np.abs(got.astype(LD) - exact) / spacing


def accuracy_grid(dtype):
    bound = 110.0 if dtype == F32 else 750.0
    rng = np.random.default_rng(5)
    tiny = np.geomspace(1e-30, 1.0, 20000)
    x = np.concatenate([np.linspace(-bound, bound, 200001), rng.uniform(-20, 20, 100000),
                        tiny, -tiny, np.linspace(0.6, 0.65, 5001),
                        -np.linspace(0.6, 0.65, 5001)])
    return x.astype(dtype)


def _build_ids():
    return list(BUILDS)


@pytest.mark.skipif(np.finfo(LD).nmant <= np.finfo(np.float64).nmant,
                    reason="np.longdouble is no wider than float64 here")
@pytest.mark.parametrize("name, exact", [("sigmoid", _exact_sigmoid), ("tanh", _exact_tanh)],
                         ids=["sigmoid", "tanh"])
def test_exp_based_activation_accuracy_in_ulp(name, exact, dtype):
    """Over [-110, 110] (float32) / [-750, 750] (float64), tiny values and the branch
    point of tanh at |x| = 0.625.  One build suffices: the builds agree bitwise (above)."""
    x = accuracy_grid(dtype)
    got = K.activation(name, x.reshape(1, -1), n_threads=1).ravel()
    errors = ulp_errors(got, exact(x), dtype)
    worst = int(np.argmax(errors))
    assert errors[worst] <= MAX_ULP, (
        f"{name}({x[worst]!r}) = {got[worst]!r}, exact {exact(x[worst:worst + 1])[0]!r}: "
        f"{float(errors[worst]):.3f} ulp; {int((errors > MAX_ULP).sum())} of {x.size} "
        f"points above {MAX_ULP} ulp")


@pytest.mark.parametrize("build", _build_ids())
def test_nan_and_infinities(build, dtype):
    module = BUILDS[build]
    U = np.array([[np.nan, np.inf, -np.inf, -np.nan, 0.0, -0.0]], dtype=dtype)
    sig, tanh = _act(module, "sigmoid", U), _act(module, "tanh", U)
    relu, ident = _act(module, "relu", U), _act(module, "identity", U)
    for Y in (sig, tanh, relu, ident):
        assert np.isnan(Y[0, 0]) and np.isnan(Y[0, 3])
    assert sig[0, 1] == 1.0 and sig[0, 2] == 0.0
    assert tanh[0, 1] == 1.0 and tanh[0, 2] == -1.0
    assert relu[0, 1] == np.inf and relu[0, 2] == 0.0
    assert sig[0, 4] == sig[0, 5] == 0.5
    assert tanh[0, 4] == 0.0 and tanh[0, 5] == 0.0
    # softmax: a NaN in a row makes that row NaN; so does +inf (inf - inf), as in the
    # reference
    S = _act(module, "softmax", np.array([[1.0, np.nan, 2.0], [np.inf, 1.0, -np.inf],
                                          [-np.inf, 0.0, 0.0]], dtype=dtype))
    assert np.isnan(S[0]).all()
    assert np.isnan(S[1]).all()
    np.testing.assert_array_equal(S[2], [0.0, 0.5, 0.5])
    # NaN through the backward passes
    Y = np.array([[np.nan, 0.5]], dtype=dtype)
    dY = np.array([[1.0, np.nan]], dtype=dtype)
    for name in ("sigmoid", "tanh", "softmax"):
        assert np.isnan(_act_backward(module, name, Y, dY)).all(), name


def test_tanh_keeps_the_sign_of_zero(dtype):
    """tanh is odd: tanh(-0.0) is -0.0, as in C99 tanh and NumPy (np.tanh(-0.0))."""
    U = np.array([[0.0, -0.0, 1e-30, -1e-30]], dtype=dtype)
    got = K.activation("tanh", U)
    np.testing.assert_array_equal(np.signbit(got), np.signbit(np.tanh(U)),
                                  err_msg=f"tanh({U.ravel().tolist()}) = {got.ravel().tolist()}")


@pytest.mark.parametrize("build", _build_ids())
def test_sigmoid_saturates_exactly_without_warnings(build, dtype):
    module = BUILDS[build]
    U = np.array([[1e4, -1e4, 1e30, -1e30, 800.0, -800.0]], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(all="raise"):
            Y = _act(module, "sigmoid", U)
            T = _act(module, "tanh", U)
            S = _act(module, "softmax", U.reshape(3, 2))
            also_public = K.activation("sigmoid", U)
    np.testing.assert_array_equal(Y, [[1.0, 0.0, 1.0, 0.0, 1.0, 0.0]])
    assert not np.signbit(Y).any()
    np.testing.assert_array_equal(T, [[1.0, -1.0, 1.0, -1.0, 1.0, -1.0]])
    np.testing.assert_array_equal(S, [[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    np.testing.assert_array_equal(also_public, Y)
    # and their backward passes are exactly 0 there
    D = _act_backward(module, "sigmoid", Y, np.ones_like(Y))
    np.testing.assert_array_equal(D, 0.0)


@pytest.mark.parametrize("build", _build_ids())
def test_sigmoid_and_tanh_symmetry(build, dtype):
    """sigmoid(-x) = 1 - sigmoid(x) to rounding and tanh(-x) = -tanh(x) exactly."""
    module = BUILDS[build]
    x = np.abs(accuracy_grid(dtype)).reshape(1, -1)
    t_pos, t_neg = _act(module, "tanh", x), _act(module, "tanh", -x)
    np.testing.assert_array_equal(t_neg, -t_pos)
    s_pos, s_neg = _act(module, "sigmoid", x), _act(module, "sigmoid", -x)
    eps = np.finfo(dtype).eps
    np.testing.assert_allclose(s_neg.astype(np.float64) + s_pos, 1.0, rtol=0, atol=2 * eps)
    assert ((s_pos >= 0.5) & (s_pos <= 1) & (s_neg >= 0) & (s_neg <= 0.5)).all()
