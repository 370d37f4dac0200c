"""minimize(), linear regression, optimizer trajectories and plots."""
import math

import numpy as np
import pytest

import gdcore as gd
from gdcore import optim
from gdcore.testfunctions import FUNCTIONS, rosenbrock, saddle
from gdcore.trajectories import ROSENBROCK


def quartic(x):
    return x ** 4 + x ** 3 - 2 * x ** 2


def quartic_grad(x):
    return 4 * x ** 3 + 3 * x ** 2 - 4 * x


# ---- the textbook runs ---------------------------------------------------------------

def test_square_from_5_reproduces_the_textbook_iterates():
    result = gd.minimize(lambda x: x * x, 5.0, grad=lambda x: 2 * x, lr=0.01, tol=0.1)
    # x_{k+1} = x_k - 0.01 * 2 x_k = 0.98 x_k
    expected = 5.0 * 0.98 ** np.arange(len(result.path))
    np.testing.assert_allclose(result.path, expected, rtol=1e-12)
    np.testing.assert_allclose(result.path[1:4], [4.900, 4.802, 4.70596], rtol=1e-12)
    # stop at the first k with |2 x_k| < 0.1, i.e. x_k < 0.05
    k = int(np.argmax(expected < 0.05))
    assert result.nit == k and result.converged
    assert abs(2 * result.x) < 0.1 <= abs(2 * result.path[-2])
    assert result.fun == pytest.approx(result.x ** 2)
    assert isinstance(result.x, float) and result.path.shape == (k + 1,)


@pytest.mark.parametrize("x0, basin_minimum, other", [(4.0, 0.6930, -1.4430),
                                                      (-4.0, -1.4430, 0.6930)])
def test_quartic_ends_in_the_basin_of_its_start(x0, basin_minimum, other):
    result = gd.minimize(quartic, x0, grad=quartic_grad, lr=0.01, tol=0.1)
    assert result.converged and abs(quartic_grad(result.x)) < 0.1
    # the minima of x^4 + x^3 - 2x^2: roots of 4x^2 + 3x - 4 = 0
    roots = sorted(np.roots([4, 3, -4]))
    assert roots[0] == pytest.approx(-1.4430, abs=1e-3) and roots[1] == pytest.approx(0.6930, abs=1e-3)
    assert abs(result.x - basin_minimum) < abs(result.x - other)
    assert abs(result.x - basin_minimum) < 0.05
    # the same run by hand
    x = x0
    for _ in range(result.nit):
        x -= 0.01 * quartic_grad(x)
    assert result.x == x


def test_numerical_gradient_is_the_default_and_agrees(rng):
    analytic = gd.minimize(quartic, 4.0, grad=quartic_grad, lr=0.01, tol=0.1)
    numeric = gd.minimize(quartic, 4.0, lr=0.01, tol=0.1)
    assert numeric.nit == analytic.nit
    assert numeric.x == pytest.approx(analytic.x, rel=1e-8)


def test_vector_functions_and_optimizers():
    A = np.array([[3.0, 0.5], [0.5, 1.0]])
    b = np.array([1.0, -2.0])
    fun = lambda x: 0.5 * x @ A @ x - b @ x
    result = gd.minimize(fun, [0.0, 0.0], grad=lambda x: A @ x - b, lr=0.2, tol=1e-10,
                         max_iter=10_000)
    np.testing.assert_allclose(result.x, np.linalg.solve(A, b), rtol=1e-8)
    assert result.path.shape == (result.nit + 1, 2) and result.converged
    adam = gd.minimize(fun, np.zeros(2), grad=lambda x: A @ x - b,
                       optimizer=optim.Adam(lr=0.05), tol=1e-8, max_iter=20_000)
    np.testing.assert_allclose(adam.x, np.linalg.solve(A, b), rtol=1e-5)


def test_callback_stop_divergence_and_budget():
    seen = []
    result = gd.minimize(lambda x: x * x, 5.0, grad=lambda x: 2 * x, lr=0.01, tol=0,
                         callback=lambda x, k: seen.append(k) or k == 3)
    assert seen == [1, 2, 3] and result.nit == 3 and not result.converged
    assert result.grad == pytest.approx(2 * result.x)
    diverged = gd.minimize(lambda x: x * x, 1.0, grad=lambda x: 2 * x, lr=1.5, tol=1e-6)
    assert not diverged.converged and diverged.nit < 10_000 and "finite" in diverged.message
    capped = gd.minimize(lambda x: x * x, 1.0, grad=lambda x: 2 * x, lr=1e-6, max_iter=7)
    assert capped.nit == 7 and not capped.converged and len(capped.path) == 8


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(fun=3, x0=1.0), TypeError, "fun"),
    (dict(fun=abs, x0=1.0, lr=0), ValueError, "lr"),
    (dict(fun=abs, x0=1.0, tol=-1), ValueError, "tol"),
    (dict(fun=abs, x0=1.0, max_iter=-1), ValueError, "max_iter"),
    (dict(fun=abs, x0=np.nan), ValueError, "x0"),
    (dict(fun=abs, x0="one"), TypeError, "x0"),
    (dict(fun=abs, x0=1.0, optimizer="adam"), TypeError, "optimizer"),
    (dict(fun=abs, x0=[1.0, 2.0], grad=lambda x: np.zeros(3)), ValueError, "grad"),
])
def test_minimize_rejects_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        gd.minimize(**kwargs)


# ---- every optimizer on Rosenbrock -------------------------------------------------------

@pytest.mark.parametrize("name", list(ROSENBROCK))
def test_every_optimizer_reaches_rosenbrocks_minimum(name):
    make, budget, tolerance = ROSENBROCK[name]
    result = gd.minimize(rosenbrock, np.array([-1.5, 2.0]), grad=rosenbrock.gradient,
                         optimizer=make(), tol=1e-4, max_iter=budget)
    # within the budget: converged early, or (Adadelta, slow on Rosenbrock) used it all
    assert result.nit == budget or (result.converged and result.nit < budget), (name, result)
    assert result.converged == (result.nit < budget)
    assert np.max(np.abs(result.x - 1.0)) <= tolerance, (name, result.x, result.nit)


def test_optimizer_paths_uses_the_documented_presets():
    paths = gd.trajectories.optimizer_paths(rosenbrock, steps=50)
    assert list(paths) == ["SGD", "Momentum", "Nesterov", "Adagrad", "Adadelta", "RMSprop",
                           "Adam"]
    for result in paths.values():
        assert result.path.shape == (51, 2)
        np.testing.assert_array_equal(result.path[0], [-1.5, 2.0])
    # plain SGD's first step is -lr * gradient at the start
    lr = ROSENBROCK["SGD"][0]().lr
    np.testing.assert_allclose(paths["SGD"].path[1],
                               [-1.5, 2.0] - lr * rosenbrock.gradient([-1.5, 2.0]), rtol=1e-12)


def test_saddle_escape_moves_away_along_y():
    result = gd.minimize(saddle, saddle.start, grad=saddle.gradient, lr=0.1, tol=0,
                         max_iter=200)
    assert abs(result.x[1]) > 1.0 and abs(result.x[0]) < 1e-3


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_numerical_and_analytic_gradients_of_the_test_functions(name, rng):
    f = FUNCTIONS[name]
    (x0, x1), (y0, y1) = f.bounds
    for _ in range(5):
        p = np.array([rng.uniform(x0, x1), rng.uniform(y0, y1)])
        numeric = gd.numerical_gradient(f, p, h=1e-6)
        np.testing.assert_allclose(numeric, f.gradient(p), rtol=1e-6,
                                   atol=1e-6 * max(1.0, np.abs(f.gradient(p)).max()))


# ---- linear regression ---------------------------------------------------------------

def test_gradient_descent_reaches_least_squares_on_the_seven_points():
    x, y = gd.datasets.seven_points()
    exact = gd.linear_regression(x, y, method="lstsq")
    # the normal equations by hand
    A = np.hstack([np.ones((7, 1)), x])
    theta = np.linalg.solve(A.T @ A, A.T @ y)
    assert exact.intercept == pytest.approx(theta[0], rel=1e-10)
    assert exact.coef[0] == pytest.approx(theta[1], rel=1e-10)
    by_gd = gd.linear_regression(x, y, method="gd", lr=0.05, tol=1e-9)
    assert by_gd.converged
    assert by_gd.intercept == pytest.approx(exact.intercept, abs=1e-6)
    assert by_gd.coef[0] == pytest.approx(exact.coef[0], abs=1e-6)
    assert by_gd.mse == pytest.approx(exact.mse, rel=1e-9)
    np.testing.assert_allclose(by_gd.predict(x), exact.predict(x), atol=1e-5)


def test_gradient_descent_reaches_least_squares_in_n_dimensions(rng):
    X = rng.standard_normal((300, 6))
    Y = X @ rng.standard_normal((6, 2)) + [0.5, -1.0] + 0.05 * rng.standard_normal((300, 2))
    exact = gd.linear_regression(X, Y, method="lstsq")
    by_gd = gd.linear_regression(X, Y, method="gd", lr=0.1, tol=1e-10)
    np.testing.assert_allclose(by_gd.coef, exact.coef, atol=1e-8)
    np.testing.assert_allclose(by_gd.intercept, exact.intercept, atol=1e-8)
    assert by_gd.coef.shape == (6, 2) and by_gd.nit > 0
    with_adam = gd.linear_regression(X, Y[:, 0], optimizer=optim.Adam(lr=0.05), tol=1e-8,
                                     max_iter=50_000)
    np.testing.assert_allclose(with_adam.coef, exact.coef[:, 0], atol=1e-5)


def test_linear_regression_rejects_bad_input():
    with pytest.raises(ValueError, match="method"):
        gd.linear_regression([1.0, 2.0], [1.0, 2.0], method="normal")
    with pytest.raises(ValueError, match="rows"):
        gd.linear_regression([[1.0], [2.0]], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="finite"):
        gd.linear_regression([[1.0], [np.nan]], [1.0, 2.0])


# ---- plots -----------------------------------------------------------------------------

def _nonblank_png(path):
    import matplotlib.image as mpimg
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    image = mpimg.imread(path)
    assert image.shape[0] > 100 and image.shape[1] > 100
    assert image[..., :3].std() > 0.05        # more than a blank canvas


def test_plots_write_nonblank_pngs(tmp_path):
    pytest.importorskip("matplotlib")
    X, y = gd.datasets.spirals(n_samples=90, seed=0)
    net = gd.MLP([2, 16, 3], seed=0)
    history = net.fit(X.astype(np.float32), y, epochs=5, validation_split=0.2, progress=False)
    gd.plot.plot_history(history, tmp_path / "history.png")
    paths = gd.trajectories.optimizer_paths(rosenbrock, steps=300)
    gd.plot.plot_paths(rosenbrock, paths, tmp_path / "paths.png")
    square = gd.minimize(lambda x: x * x, 5.0, lr=0.1, tol=0.1)
    gd.plot.plot_descent_1d(lambda x: x * x, square.path, tmp_path / "descent.png")
    for name in ("history.png", "paths.png", "descent.png"):
        _nonblank_png(tmp_path / name)
