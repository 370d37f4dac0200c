"""Classic test functions of two variables for gradient descent.

Each function is an object with a ``name``, the value (``f(x)`` or ``f.value(x)``), the
analytic ``gradient(x)`` and ``hessian(x)``, its known ``minima`` and
``minimum_value``, plotting ``bounds`` and a suggested ``start`` point; ``grid(X, Y)``
evaluates the value on meshgrid arrays for contour plots::

    import numpy as np
    from gdcore import testfunctions as tf

    f = tf.rosenbrock
    f([1.0, 1.0])                   # 0.0
    f.gradient(f.start)             # array([...])
    (x0, x1), (y0, y1) = f.bounds
    X, Y = np.meshgrid(np.linspace(x0, x1, 200), np.linspace(y0, y1, 200))
    Z = f.grid(X, Y)                # shape (200, 200)

Points are array-likes of shape (2,) with finite real entries, evaluated in float64.
``FUNCTIONS`` maps each name to its instance; ``get(name)`` looks one up.
"""
from typing import Any, Callable, List, Optional, Sequence, Tuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._validation import check_float

__all__ = [
    "TestFunction", "Rosenbrock", "Beale", "Booth", "Himmelblau", "Saddle",
    "rosenbrock", "beale", "booth", "himmelblau", "saddle", "FUNCTIONS", "get",
]


def __dir__():
    """Tab completion and ``dir()`` show the public names only."""
    return list(__all__)


def _point(x, name="x"):
    """``x`` as a new float64 array of shape (2,) with finite entries."""
    if x is None:
        raise TypeError(f"{name} must be an array-like of 2 real numbers, got None")
    try:
        a = np.asarray(x)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be an array-like of 2 real numbers: {exc}") from None
    if a.dtype.kind not in "iuf":
        raise TypeError(f"{name} must contain real numbers, got dtype {a.dtype}")
    if a.shape != (2,):
        raise ValueError(f"{name} must have shape (2,), got shape {a.shape}")
    a = a.astype(np.float64)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite, got {a}")
    return a


def _grid_array(a: ArrayLike, name: str) -> np.ndarray:
    if a is None:
        raise TypeError(f"{name} must be a real array, got None")
    try:
        a = np.asarray(a)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a real array: {exc}") from None
    if a.dtype.kind not in "iuf":
        raise TypeError(f"{name} must contain real numbers, got dtype {a.dtype}")
    a = a.astype(np.float64)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite")
    return a


class TestFunction:
    """A test function f(x, y) of a point ``x = (x, y)``.

    Subclasses implement ``_value``, ``_gradient`` and ``_hessian`` on float64 scalars
    or arrays (broadcasting elementwise); this class validates points and packs results.

    Attributes
    ----------
    name : str
        The key of the function in ``FUNCTIONS``.
    minima : list of ndarray
        The known global minimizers, each a new float64 array of shape (2,); empty when
        the function has no minimum.
    minimum_value : float or None
        f at the minimizers; None when there is no minimum.
    bounds : tuple
        ``((xmin, xmax), (ymin, ymax))``, a plotting window containing the minima and
        ``start``.
    start : ndarray
        A suggested start point for gradient descent (a new array on each access).
    """

    # Not a test class, whatever pytest thinks of the name.
    __test__ = False
    name: Optional[str] = None
    # f, its gradient and its Hessian at (x, y), written by each function (they broadcast)
    _value: Callable[..., Any]
    _gradient: Callable[..., Any]
    _hessian: Callable[..., Any]

    def __init__(self, minima: Sequence[ArrayLike], minimum_value: Optional[float],
                 bounds: Sequence[Tuple[float, float]], start: ArrayLike) -> None:
        self._minima = tuple(np.array(m, dtype=np.float64) for m in minima)
        self._minimum_value = None if minimum_value is None else float(minimum_value)
        self._bounds = tuple((float(lo), float(hi)) for lo, hi in bounds)
        self._start = np.array(start, dtype=np.float64)

    @property
    def minima(self) -> List[NDArray[np.float64]]:
        return [m.copy() for m in self._minima]

    @property
    def minimum_value(self) -> Optional[float]:
        return self._minimum_value

    @property
    def bounds(self) -> Tuple[Tuple[float, float], ...]:
        return self._bounds

    @property
    def start(self) -> NDArray[np.float64]:
        return self._start.copy()

    def value(self, x: ArrayLike) -> float:
        """f at the point ``x``.

        Parameters
        ----------
        x : array-like of shape (2,)
            Finite real coordinates (x, y).

        Returns
        -------
        float
        """
        p = _point(x)
        return float(self._value(p[0], p[1]))

    def __call__(self, x: ArrayLike) -> float:
        """f at the point ``x`` (same as ``value``)."""
        return self.value(x)

    def gradient(self, x: ArrayLike) -> NDArray[np.float64]:
        """The analytic gradient (df/dx, df/dy) at ``x``.

        Parameters
        ----------
        x : array-like of shape (2,)
            Finite real coordinates (x, y).

        Returns
        -------
        ndarray of shape (2,), float64
        """
        p = _point(x)
        return np.array(self._gradient(p[0], p[1]), dtype=np.float64)

    def hessian(self, x: ArrayLike) -> NDArray[np.float64]:
        """The analytic Hessian [[f_xx, f_xy], [f_xy, f_yy]] at ``x``.

        Parameters
        ----------
        x : array-like of shape (2,)
            Finite real coordinates (x, y).

        Returns
        -------
        ndarray of shape (2, 2), float64
        """
        p = _point(x)
        return np.array(self._hessian(p[0], p[1]), dtype=np.float64)

    def grid(self, X: ArrayLike, Y: ArrayLike) -> NDArray[np.float64]:
        """f evaluated elementwise on coordinate arrays, for contour plots.

        Parameters
        ----------
        X, Y : array_like
            Finite real x and y coordinates of broadcastable shapes, typically from
            ``np.meshgrid``.

        Returns
        -------
        ndarray of float64
            ``Z[i, ...] = f(X[i, ...], Y[i, ...])``, of the broadcast shape.
        """
        X = _grid_array(X, "X")
        Y = _grid_array(Y, "Y")
        try:
            X, Y = np.broadcast_arrays(X, Y)
        except ValueError:
            raise ValueError(f"X and Y must have broadcastable shapes, got {X.shape} "
                             f"and {Y.shape}") from None
        return np.asarray(self._value(X, Y), dtype=np.float64)

    def __repr__(self):
        return f"{type(self).__name__}()"


class Rosenbrock(TestFunction):
    """Rosenbrock's banana function.

        f(x, y) = (a - x)^2 + b (y - x^2)^2

    The minimum f = 0 lies at (a, a^2), at the end of a long curved flat valley along
    y = x^2: the classic case where plain gradient descent zig-zags and crawls.
    ``bounds`` and ``start`` (-1.5, 2) suit the default a = 1, b = 100.

    Parameters
    ----------
    a : float
        Position of the minimum, x = a.
    b : float
        Steepness of the valley walls, > 0.
    """

    name = "rosenbrock"

    def __init__(self, a: float = 1.0, b: float = 100.0) -> None:
        self.a = check_float(a, "a")
        self.b = check_float(b, "b", 0.0, low_open=True)
        super().__init__(minima=[(self.a, self.a ** 2)], minimum_value=0.0,
                         bounds=((-2.0, 2.0), (-1.0, 3.0)), start=(-1.5, 2.0))

    def _value(self, x, y):
        return (self.a - x) ** 2 + self.b * (y - x ** 2) ** 2

    def _gradient(self, x, y):
        r = y - x ** 2
        return (-2.0 * (self.a - x) - 4.0 * self.b * x * r, 2.0 * self.b * r)

    def _hessian(self, x, y):
        fxy = -4.0 * self.b * x
        return ((2.0 - 4.0 * self.b * y + 12.0 * self.b * x ** 2, fxy), (fxy, 2.0 * self.b))

    def __repr__(self):
        return f"Rosenbrock(a={self.a!r}, b={self.b!r})"


class Beale(TestFunction):
    """Beale's function.

        f(x, y) = (1.5 - x + x y)^2 + (2.25 - x + x y^2)^2 + (2.625 - x + x y^3)^2

    The minimum f = 0 lies at (3, 0.5); the surface is flat near the axes and rises
    steeply (as y^6) at the corners of ``bounds``.
    """

    name = "beale"

    def __init__(self):
        super().__init__(minima=[(3.0, 0.5)], minimum_value=0.0,
                         bounds=((-4.5, 4.5), (-4.5, 4.5)), start=(1.0, 1.0))

    @staticmethod
    def _terms(x, y):
        return 1.5 - x + x * y, 2.25 - x + x * y ** 2, 2.625 - x + x * y ** 3

    def _value(self, x, y):
        t1, t2, t3 = self._terms(x, y)
        return t1 ** 2 + t2 ** 2 + t3 ** 2

    def _gradient(self, x, y):
        t1, t2, t3 = self._terms(x, y)
        gx = 2.0 * (t1 * (y - 1.0) + t2 * (y ** 2 - 1.0) + t3 * (y ** 3 - 1.0))
        gy = 2.0 * (t1 * x + t2 * 2.0 * x * y + t3 * 3.0 * x * y ** 2)
        return gx, gy

    def _hessian(self, x, y):
        t1, t2, t3 = self._terms(x, y)
        fxx = 2.0 * ((y - 1.0) ** 2 + (y ** 2 - 1.0) ** 2 + (y ** 3 - 1.0) ** 2)
        fxy = 2.0 * (x * (y - 1.0) + t1
                     + 2.0 * x * y * (y ** 2 - 1.0) + 2.0 * y * t2
                     + 3.0 * x * y ** 2 * (y ** 3 - 1.0) + 3.0 * y ** 2 * t3)
        fyy = 2.0 * (x ** 2 + (2.0 * x * y) ** 2 + 2.0 * x * t2
                     + (3.0 * x * y ** 2) ** 2 + 6.0 * x * y * t3)
        return (fxx, fxy), (fxy, fyy)


class Booth(TestFunction):
    """Booth's function, a convex quadratic.

        f(x, y) = (x + 2y - 7)^2 + (2x + y - 5)^2

    The minimum f = 0 lies at (1, 3).  The Hessian [[10, 8], [8, 10]] has eigenvalues
    2 and 18: gradient descent converges for learning rates below 2/18.
    """

    name = "booth"

    def __init__(self):
        super().__init__(minima=[(1.0, 3.0)], minimum_value=0.0,
                         bounds=((-10.0, 10.0), (-10.0, 10.0)), start=(-6.0, -6.0))

    def _value(self, x, y):
        return (x + 2.0 * y - 7.0) ** 2 + (2.0 * x + y - 5.0) ** 2

    def _gradient(self, x, y):
        return 10.0 * x + 8.0 * y - 34.0, 8.0 * x + 10.0 * y - 38.0

    def _hessian(self, x, y):
        return (10.0, 8.0), (8.0, 10.0)


class Himmelblau(TestFunction):
    """Himmelblau's function.

        f(x, y) = (x^2 + y - 11)^2 + (x + y^2 - 7)^2

    Four global minima with f = 0: (3, 2) exactly, and three irrational ones near
    (-2.805118, 3.131312), (-3.779310, -3.283186) and (3.584428, -1.848126), which are
    refined here to full double precision by Newton's method on grad f = 0.  Which one
    gradient descent reaches depends on the start point.
    """

    name = "himmelblau"

    _APPROXIMATE_MINIMA = ((3.0, 2.0), (-2.805118, 3.131312), (-3.779310, -3.283186),
                           (3.584428, -1.848126))

    def __init__(self):
        minima = [self._newton(m) for m in self._APPROXIMATE_MINIMA]
        super().__init__(minima=minima, minimum_value=0.0,
                         bounds=((-5.0, 5.0), (-5.0, 5.0)), start=(0.0, 0.0))

    def _newton(self, p0):
        # Quadratic convergence: from 6 correct digits, 3 steps reach machine precision.
        p = np.array(p0, dtype=np.float64)
        for _ in range(20):
            step = np.linalg.solve(np.array(self._hessian(*p)), np.array(self._gradient(*p)))
            p -= step
            if np.all(np.abs(step) <= 1e-15 * np.abs(p)):
                break
        return p

    def _value(self, x, y):
        return (x ** 2 + y - 11.0) ** 2 + (x + y ** 2 - 7.0) ** 2

    def _gradient(self, x, y):
        r1 = x ** 2 + y - 11.0
        r2 = x + y ** 2 - 7.0
        return 4.0 * x * r1 + 2.0 * r2, 2.0 * r1 + 4.0 * y * r2

    def _hessian(self, x, y):
        fxy = 4.0 * (x + y)
        return (12.0 * x ** 2 + 4.0 * y - 42.0, fxy), (fxy, 12.0 * y ** 2 + 4.0 * x - 26.0)


class Saddle(TestFunction):
    """The saddle f(x, y) = x^2 - y^2.

    No minimum (``minima`` is empty, ``minimum_value`` None): f is unbounded below
    along y.  The origin is a saddle point (``saddle_point``), where the gradient
    vanishes and the Hessian diag(2, -2) is indefinite.  ``start`` (-1.5, 0.01) lies
    just off the x-axis, so gradient descent first slides towards the saddle and then
    escapes along y, away from it at a geometric rate.
    """

    name = "saddle"

    def __init__(self):
        super().__init__(minima=[], minimum_value=None,
                         bounds=((-2.0, 2.0), (-2.0, 2.0)), start=(-1.5, 0.01))

    @property
    def saddle_point(self) -> NDArray[np.float64]:
        """The saddle point (0, 0), a new float64 array."""
        return np.zeros(2)

    def _value(self, x, y):
        return x ** 2 - y ** 2

    def _gradient(self, x, y):
        return 2.0 * x, -2.0 * y

    def _hessian(self, x, y):
        return (2.0, 0.0), (0.0, -2.0)


rosenbrock = Rosenbrock()
beale = Beale()
booth = Booth()
himmelblau = Himmelblau()
saddle = Saddle()

FUNCTIONS = {f.name: f for f in (rosenbrock, beale, booth, himmelblau, saddle)}


def get(name: str) -> "TestFunction":
    """The test function called ``name``, one of the keys of ``FUNCTIONS``.

    Parameters
    ----------
    name : str

    Returns
    -------
    TestFunction
    """
    if not isinstance(name, str) or name not in FUNCTIONS:
        raise ValueError(f"name must be one of {', '.join(map(repr, FUNCTIONS))}; "
                         f"got {name!r}")
    return FUNCTIONS[name]
