import numpy as np
import pytest

from gdcore import testfunctions as tf
from gdcore import numerical_gradient

ALL = list(tf.FUNCTIONS.values())
WITH_MINIMA = [f for f in ALL if f.minima]
IDS = [f.name for f in ALL]

# Values and gradients worked out by hand from the formulas in the docstrings.
HAND_VALUES = [
    (tf.rosenbrock, (0.0, 0.0), 1.0, (-2.0, 0.0)),
    (tf.rosenbrock, (-1.0, 2.0), 4.0 + 100.0, (-4.0 + 400.0, 200.0)),
    (tf.beale, (0.0, 0.0), 1.5 ** 2 + 2.25 ** 2 + 2.625 ** 2,
     (2 * (-1.5 - 2.25 - 2.625), 0.0)),
    (tf.booth, (0.0, 0.0), 49.0 + 25.0, (-34.0, -38.0)),
    (tf.himmelblau, (0.0, 0.0), 121.0 + 49.0, (-14.0, -22.0)),
    (tf.saddle, (1.0, 2.0), -3.0, (2.0, -4.0)),
]


def random_points(f, n, seed):
    rng = np.random.default_rng(seed)
    (x0, x1), (y0, y1) = f.bounds
    return np.column_stack([rng.uniform(x0, x1, n), rng.uniform(y0, y1, n)])


@pytest.mark.parametrize("f, x, value, grad", HAND_VALUES,
                         ids=[f"{c[0].name}-{c[1]}" for c in HAND_VALUES])
def test_values_and_gradients_by_hand(f, x, value, grad):
    assert f(x) == pytest.approx(value, rel=1e-14)
    assert f.value(x) == pytest.approx(value, rel=1e-14)
    np.testing.assert_allclose(f.gradient(x), grad, rtol=1e-14, atol=1e-14)


def test_documented_minimizers():
    np.testing.assert_array_equal(tf.rosenbrock.minima, [[1.0, 1.0]])
    np.testing.assert_array_equal(tf.beale.minima, [[3.0, 0.5]])
    np.testing.assert_array_equal(tf.booth.minima, [[1.0, 3.0]])
    stated = [(3.0, 2.0), (-2.805118, 3.131312), (-3.779310, -3.283186),
              (3.584428, -1.848126)]
    minima = tf.himmelblau.minima
    assert len(minima) == 4
    for m, s in zip(minima, stated):
        np.testing.assert_allclose(m, s, atol=1e-6)
    np.testing.assert_array_equal(minima[0], [3.0, 2.0])
    for f in WITH_MINIMA:
        assert f.minimum_value == 0.0


@pytest.mark.parametrize("f", WITH_MINIMA, ids=[f.name for f in WITH_MINIMA])
def test_minima_values_gradients_and_curvature(f):
    for m in f.minima:
        assert m.dtype == np.float64 and m.shape == (2,)
        assert abs(f(m) - f.minimum_value) <= 1e-12
        np.testing.assert_allclose(f.gradient(m), 0.0, atol=1e-8)
        assert np.all(np.linalg.eigvalsh(f.hessian(m)) > 0)


def test_himmelblau_minima_are_distinct_and_exact():
    minima = np.array(tf.himmelblau.minima)
    dist = np.linalg.norm(minima[:, None] - minima[None, :], axis=-1)
    assert np.all(dist[~np.eye(4, dtype=bool)] > 1.0)
    for m in minima:
        assert tf.himmelblau(m) <= 1e-12
        # Refined to double precision: the gradient is at rounding level, far below
        # what the 7-digit starting values give.
        np.testing.assert_allclose(tf.himmelblau.gradient(m), 0.0, atol=1e-12)


def test_saddle_has_no_minimum():
    s = tf.saddle
    assert s.minima == []
    assert s.minimum_value is None
    np.testing.assert_array_equal(s.saddle_point, [0.0, 0.0])
    assert s(s.saddle_point) == 0.0
    np.testing.assert_array_equal(s.gradient(s.saddle_point), [0.0, 0.0])
    eig = np.linalg.eigvalsh(s.hessian(s.saddle_point))
    assert eig.min() < 0 < eig.max()
    assert s((0.0, 10.0)) < s((0.0, 1.0)) < 0.0 < s((1.0, 0.0))


@pytest.mark.parametrize("f", ALL, ids=IDS)
def test_gradient_matches_central_differences(f):
    for p in random_points(f, 6, seed=1):
        g = f.gradient(p)
        num = numerical_gradient(f, p, h=1e-5)
        np.testing.assert_allclose(g, num, rtol=1e-6, atol=1e-6 * max(1.0, np.abs(g).max()))


@pytest.mark.parametrize("f", ALL, ids=IDS)
def test_hessian_matches_central_differences_of_gradient(f):
    for p in random_points(f, 4, seed=2):
        H = f.hessian(p)
        assert H.shape == (2, 2) and H.dtype == np.float64
        np.testing.assert_array_equal(H, H.T)
        num = np.array([numerical_gradient(lambda q, i=i: f.gradient(q)[i], p, h=1e-5)
                        for i in range(2)])
        np.testing.assert_allclose(H, num, rtol=1e-6, atol=1e-6 * max(1.0, np.abs(H).max()))


@pytest.mark.parametrize("a, b", [(1.0, 100.0), (-0.5, 3.0), (2.0, 1.0)])
def test_rosenbrock_parameters(a, b):
    f = tf.Rosenbrock(a=a, b=b)
    (m,) = f.minima
    np.testing.assert_array_equal(m, [a, a * a])
    assert f(m) == 0.0
    np.testing.assert_array_equal(f.gradient(m), [0.0, 0.0])
    assert f((0.0, 0.0)) == pytest.approx(a * a)
    for p in random_points(f, 3, seed=3):
        np.testing.assert_allclose(f.gradient(p), numerical_gradient(f, p), rtol=1e-6,
                                   atol=1e-6 * max(1.0, np.abs(f.gradient(p)).max()))


@pytest.mark.parametrize("kwargs, exc, match", [
    ({"b": 0.0}, ValueError, "b must be > 0"),
    ({"b": -1.0}, ValueError, "b must be > 0"),
    ({"a": np.nan}, ValueError, "a must be finite"),
    ({"a": "one"}, TypeError, "a must be a real number"),
])
def test_rosenbrock_bad_parameters(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        tf.Rosenbrock(**kwargs)


@pytest.mark.parametrize("f", ALL, ids=IDS)
def test_grid_equals_pointwise(f):
    (x0, x1), (y0, y1) = f.bounds
    xs = np.linspace(x0, x1, 7)
    ys = np.linspace(y0, y1, 5)
    X, Y = np.meshgrid(xs, ys)
    Z = f.grid(X, Y)
    assert Z.shape == (5, 7) and Z.dtype == np.float64
    expected = np.array([[f((X[i, j], Y[i, j])) for j in range(7)] for i in range(5)])
    np.testing.assert_allclose(Z, expected, rtol=1e-14, atol=0)
    np.testing.assert_array_equal(f.grid(xs[None, :], ys[:, None]), Z)
    np.testing.assert_array_equal(f.grid(X.tolist(), Y.astype(np.float32).astype(np.float64)), Z)


@pytest.mark.parametrize("X, Y, exc, match", [
    (np.zeros((2, 3)), np.zeros((3, 2)), ValueError, "broadcastable"),
    (np.array([np.nan]), np.zeros(1), ValueError, "X must be finite"),
    (np.zeros(1), np.array([np.inf]), ValueError, "Y must be finite"),
    (np.zeros(2, dtype=complex), np.zeros(2), TypeError, "X must contain real"),
    (np.zeros(2), None, TypeError, "Y must be a real array"),
])
def test_grid_rejects_bad_input(X, Y, exc, match):
    with pytest.raises(exc, match=match):
        tf.booth.grid(X, Y)


@pytest.mark.parametrize("x, exc, match", [
    ([1.0], ValueError, r"shape \(2,\)"),
    ([1.0, 2.0, 3.0], ValueError, r"shape \(2,\)"),
    ([[1.0, 2.0]], ValueError, r"shape \(2,\)"),
    (1.0, ValueError, r"shape \(2,\)"),
    ([np.nan, 0.0], ValueError, "finite"),
    ([0.0, -np.inf], ValueError, "finite"),
    ([[1.0], [2.0, 3.0]], ValueError, "x must be"),
    (None, TypeError, "x must be"),
    ("ab", TypeError, "real numbers"),
    ([1 + 1j, 0.0], TypeError, "real numbers"),
    ([True, False], TypeError, "real numbers"),
    ([object(), object()], TypeError, "real numbers"),
])
@pytest.mark.parametrize("method", ["__call__", "value", "gradient", "hessian"])
def test_bad_points_raise(x, exc, match, method):
    with pytest.raises(exc, match=match):
        getattr(tf.rosenbrock, method)(x)


def test_point_types_accepted():
    f = tf.himmelblau
    ref = f(np.array([1.5, -2.0]))
    assert isinstance(ref, float)
    assert f([1.5, -2.0]) == ref
    assert f((1.5, -2.0)) == ref
    assert f(np.array([1.5, -2.0], dtype=np.float32)) == ref
    assert f([3, 2]) == 0.0
    g = f.gradient([1.5, -2.0])
    assert isinstance(g, np.ndarray) and g.shape == (2,) and g.dtype == np.float64


def test_point_not_modified():
    x = np.array([0.3, 0.7])
    before = x.copy()
    for f in ALL:
        f(x)
        f.gradient(x)
        f.hessian(x)
    np.testing.assert_array_equal(x, before)


@pytest.mark.parametrize("f", ALL, ids=IDS)
def test_bounds_and_start(f):
    (x0, x1), (y0, y1) = f.bounds
    assert x0 < x1 and y0 < y1
    assert all(isinstance(v, float) for v in (x0, x1, y0, y1))
    s = f.start
    assert s.shape == (2,) and s.dtype == np.float64
    assert x0 <= s[0] <= x1 and y0 <= s[1] <= y1
    for m in f.minima:
        assert x0 <= m[0] <= x1 and y0 <= m[1] <= y1
        assert f(s) > f(m)
    assert np.any(f.gradient(s) != 0)


def test_rosenbrock_start():
    np.testing.assert_array_equal(tf.rosenbrock.start, [-1.5, 2.0])


def test_attributes_are_not_shared_mutable_state():
    f = tf.beale
    f.start[0] = 99.0
    f.minima[0][0] = 99.0
    minima = f.minima
    minima.clear()
    np.testing.assert_array_equal(f.start, [1.0, 1.0])
    np.testing.assert_array_equal(f.minima, [[3.0, 0.5]])


def test_registry():
    assert set(tf.FUNCTIONS) == {"rosenbrock", "beale", "booth", "himmelblau", "saddle"}
    for name, f in tf.FUNCTIONS.items():
        assert f.name == name
        assert tf.get(name) is f
        assert getattr(tf, name) is f
    assert isinstance(tf.rosenbrock, tf.Rosenbrock)
    assert isinstance(tf.saddle, tf.TestFunction)
    with pytest.raises(ValueError, match="name must be one of"):
        tf.get("sphere")
    with pytest.raises(ValueError, match="name must be one of"):
        tf.get(None)
