"""Pictures of gradient descent (needs matplotlib: ``pip install gdcore[plot]``)::

    gd.plot.plot_history(history, "curves.png")
    gd.plot.plot_paths(gd.testfunctions.rosenbrock,
                       gd.trajectories.optimizer_paths(gd.testfunctions.rosenbrock),
                       "rosenbrock.png")
    gd.plot.plot_descent_1d(lambda x: x**2, gd.minimize(lambda x: x**2, 5.0).path,
                            "descent.png")

Each function draws on a new figure, saves a PNG when ``path`` is given, and returns
the matplotlib Figure.  Figures are made with matplotlib's object-oriented API and the
Agg canvas: no window, no pyplot state.

Readability rules every picture follows: one line per run, each run with its own
colour *and* marker (so runs stay apart in grey print and for colour-blind readers),
starting points marked with a black-edged square, contours in light grey so that no
path disappears into them, legends placed outside the data or in an empty corner, and
axes labelled with their units.
"""
import os as _os
from typing import (TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple,
                    Union)

import numpy as _np
from numpy.typing import ArrayLike as _ArrayLike

if TYPE_CHECKING:  # matplotlib is an optional extra, imported when a picture is drawn
    from matplotlib.axes import Axes as _Axes
    from matplotlib.figure import Figure as _Figure

_Path = Union[str, "_os.PathLike[str]", None]

__all__ = ["plot_history", "plot_paths", "plot_descent_1d", "plot_curves", "tour_pictures"]

# Tableau-10 colours and distinct markers, one pair per run.
_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf"]
_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*", "<", ">"]
_LINESTYLES = ["-", "--", "-", "-.", "-", ":", "-"]


def __dir__():
    """Tab completion and ``dir()`` show the public names only."""
    return list(__all__)


def _style(i: int) -> Dict[str, Any]:
    return {"color": _COLORS[i % len(_COLORS)], "marker": _MARKERS[i % len(_MARKERS)]}


def _figure(ncols: int = 1, nrows: int = 1, size: Tuple[float, float] = (7, 5)):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("gdcore.plot needs matplotlib: pip install 'gdcore[plot]'") from None
    fig = Figure(figsize=size, dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def _save(fig, path):
    if path is not None:
        fig.savefig(path, format="png")
    return fig


def _start(ax, x, y, label="start"):
    ax.plot(x, y, "s", markersize=8, markerfacecolor="white", markeredgecolor="black",
            markeredgewidth=1.5, label=label, zorder=5)


def plot_history(history: Any, path: _Path = None, title: str = "Training") -> "_Figure":
    """Loss per epoch (training and validation) and, when recorded, validation
    accuracy per epoch in a second panel, from a ``gdcore.History``.

    Two panels instead of a twin axis, so that no legend covers a line.
    """
    has_acc = any(val is not None for val in history.val_accuracy)
    fig, axes = _figure(2 if has_acc else 1, size=(10 if has_acc else 6, 4))
    ax = axes[0, 0]
    epochs = _np.asarray(history.epoch) + 1
    ax.plot(epochs, history.loss, label="training loss", linestyle="-", **_style(0))
    if any(val is not None for val in history.val_loss):
        ax.plot(epochs, [_np.nan if val is None else val for val in history.val_loss],
                label="validation loss", linestyle="--", **_style(1))
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (mean per sample)")
    if min(history.loss, default=1) > 0:
        ax.set_yscale("log")
    ax.set_title(f"{title}: loss")
    ax.legend(loc="upper right")
    if has_acc:
        acc = axes[0, 1]
        acc.plot(epochs, [_np.nan if val is None else 100 * val for val in history.val_accuracy],
                 label="validation accuracy", **_style(2))
        acc.set_xlabel("epoch")
        acc.set_ylabel("accuracy (%)")
        acc.set_title(f"{title}: validation accuracy")
        acc.legend(loc="lower right")
    from matplotlib.ticker import MaxNLocator

    for a in axes.flat:
        a.grid(alpha=0.3)
        a.xaxis.set_major_locator(MaxNLocator(integer=True))
    return _save(fig, path)


def _contours(ax, function, bounds, levels):
    (x0, x1), (y0, y1) = bounds
    xs, ys = _np.linspace(x0, x1, 300), _np.linspace(y0, y1, 300)
    X, Y = _np.meshgrid(xs, ys)
    Z = function.grid(X, Y)
    if _np.min(Z) >= 0:
        z_min = function.minimum_value if function.minimum_value is not None else _np.min(Z)
        shifted = Z - z_min + 1e-3
        ax.contour(X, Y, shifted, levels=_np.logspace(_np.log10(shifted.min()),
                                                      _np.log10(shifted.max()), levels),
                   colors="0.75", linewidths=0.6)
    else:
        ax.contour(X, Y, Z, levels=levels, colors="0.75", linewidths=0.6)
    for point in function.minima:
        ax.plot(point[0], point[1], "*", color="black", markersize=14, label="minimum",
                zorder=6)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_xlabel("x")
    ax.set_ylabel("y")


def plot_paths(function: Any, paths: Mapping[str, Any], path: _Path = None,
               bounds: Optional[Sequence[Tuple[float, float]]] = None, levels: int = 30,
               title: Optional[str] = None, separate: bool = True) -> "_Figure":
    """Contours of a 2-D test function with optimizer paths drawn on them.

    Parameters
    ----------
    function : a gdcore.testfunctions function (``grid``, ``bounds``, ``minima``)
    paths : dict name -> MinimizeResult or (n, 2) array of iterates
    bounds : ((x0, x1), (y0, y1)), optional
        Default: the function's bounds.
    levels : int
        Contour levels, log-spaced when the function is non-negative.
    separate : bool
        True (default): one panel per optimizer (paths that overlap in one panel
        stay readable); False: all paths in one panel.
    """
    (x0, x1), (y0, y1) = function.bounds if bounds is None else bounds
    items = list(paths.items())
    if separate:
        ncols = min(4, max(1, len(items)))
        nrows = -(-len(items) // ncols)
        fig, axes = _figure(ncols, nrows, size=(3.4 * ncols, 3.0 * nrows + 0.6))
    else:
        fig, axes = _figure(size=(8, 6))
    for i, (name, result) in enumerate(items):
        ax = axes.flat[i] if separate else axes[0, 0]
        if separate or i == 0:
            _contours(ax, function, ((x0, x1), (y0, y1)), levels)
        points = _np.asarray(getattr(result, "path", result), dtype=_np.float64)
        style = _style(i)
        every = max(1, len(points) // 12)
        steps = len(points) - 1
        ax.plot(points[:, 0], points[:, 1], "-", linewidth=1.6, markersize=4,
                markevery=every, label=f"{name} ({steps} steps)", **style)
        ax.plot(points[-1, 0], points[-1, 1], "o", color=style["color"], markersize=7,
                markeredgecolor="black", zorder=6, label=None if not separate else "end")
        if separate or i == 0:
            _start(ax, points[0, 0], points[0, 1])
        if separate:
            capped = getattr(result, "converged", True) is False
            ax.set_title(f"{name}: {steps} steps{' (cap, NOT converged)' if capped else ''}"
                         f", end ({points[-1, 0]:.3g}, {points[-1, 1]:.3g})", fontsize=9)
    if separate:
        for ax in list(axes.flat)[len(items):]:
            ax.set_visible(False)
        handles, labels = axes.flat[0].get_legend_handles_labels()
        keep = [(h, l) for h, l in zip(handles, labels) if l in ("start", "minimum", "end")]
        fig.legend([h for h, _ in keep], [l for _, l in keep], loc="outside lower center",
                   ncols=3)
    else:
        axes[0, 0].legend(loc="best", fontsize=8)
    fig.suptitle(title or f"Optimizers on the {function.name.capitalize()} function")
    return _save(fig, path)


def plot_descent_1d(fun: Callable[[float], float],
                    iterates: Union[_ArrayLike, Mapping[str, _ArrayLike]], path: _Path = None,
                    bounds: Optional[Tuple[float, float]] = None, title: Optional[str] = None,
                    zoom: Optional[Tuple[Tuple[float, float], Tuple[float, float]]] = None
                    ) -> "_Figure":
    """A 1-D function with one or more descents marked on it.

    Parameters
    ----------
    fun : callable float -> float
    iterates : 1-D array, or dict label -> 1-D array
        The iterates of one run (``minimize(...).path`` for a scalar x0), or several
        runs, each drawn as its own line with its own colour and marker and its start
        marked.
    bounds : (lo, hi), optional
        x-range of the main panel; default: the iterates' range plus a margin.
    zoom : ((x_lo, x_hi), (y_lo, y_hi)), optional
        Adds a second panel with these limits, for details (two minima of similar
        depth, say) that the main panel's scale hides.
    """
    given: Mapping[str, Any] = (iterates if isinstance(iterates, Mapping)
                                else {"descent": iterates})
    runs = {k: _np.asarray(p, dtype=_np.float64).reshape(-1) for k, p in given.items()}
    fig, axes = _figure(2 if zoom else 1, size=(11 if zoom else 7, 4.5))
    allx = _np.concatenate(list(runs.values()))
    if bounds is None:
        lo, hi = float(allx.min()), float(allx.max())
        pad = 0.2 * max(hi - lo, 1.0)
        bounds = (lo - pad, hi + pad)
    panels: List[Tuple[Any, Any, Any]] = [(axes[0, 0], bounds, None)]
    if zoom:
        panels.append((axes[0, 1], zoom[0], zoom[1]))
    for k, (ax, (lo, hi), ylim) in enumerate(panels):
        xs = _np.linspace(lo, hi, 600)
        ax.plot(xs, [fun(float(x)) for x in xs], color="0.3", linewidth=1.2, label="f(x)")
        for i, (label, points) in enumerate(runs.items()):
            values = [fun(float(x)) for x in points]
            style = _style(i + 1)
            ax.plot(points, values, "-", linewidth=0.9, markersize=4,
                    label=f"{label} ({len(points) - 1} steps)", **style)
            ax.plot(points[0], values[0], "s", markersize=9, markerfacecolor="white",
                    markeredgecolor=style["color"], markeredgewidth=2, zorder=5,
                    label=f"start {points[0]:+g}" if len(runs) > 1 else "start")
            if zoom is None or k == 1:
                ax.annotate(f"end x = {points[-1]:+.3f}", (points[-1], values[-1]),
                            textcoords="offset points", xytext=(0, -16), ha="center",
                            fontsize=8, color=style["color"])
        ax.margins(y=0.12)        # room for the 'end' labels under the last iterates
        if ylim is not None:
            ax.set_ylim(*ylim)
        ax.set_xlim(lo, hi)
        ax.set_xlabel("x")
        ax.set_ylabel("f(x)")
        ax.grid(alpha=0.3)
        ax.set_title("zoom on the minima" if k else (title or "Gradient descent in 1-D"),
                     fontsize=11)
    axes[0, 0].legend(loc="upper center", fontsize=8)
    return _save(fig, path)


def plot_curves(curves: Mapping[str, Tuple[Sequence[float], Sequence[float]]],
                path: _Path = None, xlabel: str = "x", ylabel: str = "y",
                title: Optional[str] = None, logx: bool = False, logy: bool = False,
                ax: Optional["_Axes"] = None) -> "_Figure":
    """Several runs as lines, each with its own colour and marker.

    Parameters
    ----------
    curves : dict label -> (x values, y values)
    ax : matplotlib Axes, optional
        Draw there (the Figure is not saved then unless ``path`` is given).
    """
    if ax is None:
        fig, axes = _figure(size=(7, 4.5))
        ax = axes[0, 0]
    fig = ax.figure
    for i, (label, (xs, y)) in enumerate(curves.items()):
        x = _np.asarray(xs, dtype=float)
        every = max(1, len(x) // 15)
        # markers of different runs at staggered positions: runs that coincide for a
        # stretch still show each one's markers
        ax.plot(x, y, linestyle=_LINESTYLES[i % len(_LINESTYLES)], markersize=5,
                markevery=(min(len(x) - 1, (i * every) // max(1, len(curves))), every),
                label=label, **_style(i))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title, fontsize=11)
    ax.legend(loc="best", fontsize=8)
    return _save(fig, path)


# ---- the tour's pictures ---------------------------------------------------------

def _tour_quartic(r):
    from .tour import _quartic_fun

    runs = {f"from {x0:+g}": res.path for x0, res in r["runs"].items()}
    fig = plot_descent_1d(_quartic_fun, runs, bounds=(-4.3, 4.3),
                          title="y = x^4 + x^3 - 2x^2 from +4 and -4 (lr 0.01)",
                          zoom=((-2.3, 1.6), (-3.4, 1.5)))
    ax = fig.axes[1]
    for kind, x in r["minima"].items():
        ax.annotate(f"{kind} minimum\ny = {_quartic_fun(x):+.2f}", (x, _quartic_fun(x)),
                    textcoords="offset points", xytext=(0, 26), ha="center", fontsize=8,
                    arrowprops={"arrowstyle": "->", "color": "0.3"})
    return fig


def _tour_batch(r):
    fig, axes = _figure(2, size=(11, 4.5))
    curves = r["curves"]
    label = {k: f"{k}, lr {r['lr'][k]:g}" for k in curves}
    plot_curves({label[k]: (_np.arange(len(l)), l) for k, (l, _) in curves.items()},
                xlabel="epoch", ylabel="training loss (cross-entropy)", logy=True,
                title="against epochs", ax=axes[0, 0])
    plot_curves({label[k]: (t, l) for k, (l, t) in curves.items()}, xlabel="wall time (s)",
                ylabel="training loss (cross-entropy)", title="against wall time", logy=True,
                ax=axes[0, 1])
    fig.suptitle("Batch, mini-batch and stochastic gradient descent, 784-15-10")
    return fig


def _tour_optimizers(r):
    from .testfunctions import rosenbrock

    return plot_paths(rosenbrock, r["paths"], bounds=((-2.0, 2.0), (-1.0, 3.0)),
                      title="Seven optimizers on Rosenbrock from (-1.5, 2); "
                            "star: the minimum (1, 1)")


def _tour_distance(r):
    curves = {}
    for name, res in r["paths"].items():
        d = _np.max(_np.abs(res.path - 1.0), axis=1)
        curves[name] = (_np.arange(1, len(d) + 1), _np.maximum(d, 1e-8))
    return plot_curves(curves, xlabel="iteration", ylabel="max |x - (1, 1)|",
                       title="Distance to Rosenbrock's minimum", logx=True, logy=True)


def _tour_saddle(r):
    from . import optim, trajectories
    from .testfunctions import saddle

    paths = trajectories.optimizer_paths(saddle, steps=150, optimizers={
        "SGD": optim.SGD(lr=0.01), "Momentum": optim.SGD(lr=0.01, momentum=0.9),
        "Nesterov": optim.SGD(lr=0.01, momentum=0.9, nesterov=True),
        "Adagrad": optim.Adagrad(lr=0.1), "Adadelta": optim.Adadelta(lr=1.0),
        "RMSprop": optim.RMSprop(lr=0.01), "Adam": optim.Adam(lr=0.05)})
    return plot_paths(saddle, paths, title="Escaping the saddle of x^2 - y^2 "
                                           "(150 steps each, from (-1.5, 0.01))")


def _tour_overfitting(r):
    fig, axes = _figure(2, size=(11, 4.5))
    X, y, Xt, yt = r["data"]
    xs = _np.linspace(-_np.pi, _np.pi, 300, dtype=_np.float32)[:, None]
    ax = axes[0, 0]
    ax.plot(xs[:, 0], _np.sin(xs[:, 0]), color="0.3", linestyle=":", label="sin(x)")
    ax.plot(X[:, 0], y[:, 0], "o", color="black", markersize=5, label="training points")
    fits = r["fits"]
    best = min((k for k in fits if k != "none"), key=lambda k: fits[k][2])
    for i, name in enumerate(["none", best]):
        ax.plot(xs[:, 0], fits[name][0].forward(xs)[:, 0], "-", linewidth=1.8,
                color=_COLORS[3 if i == 0 else 0],
                label=f"{'no cure' if name == 'none' else name} network")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_ylim(-2, 2)
    ax.set_title("30 noisy training points, 1-64-64-1 tanh", fontsize=11)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    ax = axes[0, 1]
    names = list(fits)
    pos = _np.arange(len(names))
    ax.bar(pos - 0.2, [fits[n][1] for n in names], 0.4, label="training MSE",
           color=_COLORS[0])
    ax.bar(pos + 0.2, [fits[n][2] for n in names], 0.4, label="held-out MSE",
           color=_COLORS[1], hatch="//")
    ax.axhline(0.09, color="black", linestyle="--", linewidth=1, label="noise level 0.09")
    ax.set_xticks(pos, names, fontsize=8)
    ax.set_ylabel("mean squared error")
    ax.set_title("Training against held-out error", fontsize=11)
    ax.legend(loc="upper right", fontsize=8)
    fig.suptitle("Over-fitting and its cures")
    return fig


def _tour_cv(r):
    fig, axes = _figure(size=(6.5, 5))
    ax = axes[0, 0]
    grid = list(r["scores"])
    pos = _np.arange(len(grid))
    mean = [r["scores"][g][0] for g in grid]
    std = [r["scores"][g][1] for g in grid]
    ax.errorbar(pos, mean, yerr=std, fmt="-o", capsize=5, color=_COLORS[0],
                label="5-fold CV MSE (mean +- std)")
    best = grid.index(r["chosen"])
    ax.plot(pos[best], mean[best], "*", markersize=16, color=_COLORS[3],
            label=f"chosen l2 = {r['chosen']:g}")
    ax.axhline(r["test"], color=_COLORS[2], linestyle="--",
               label=f"held-out MSE of the refit ({r['test']:.3f})")
    ax.set_xticks(pos, [f"{g:g}" for g in grid])
    ax.set_xlabel("L2 penalty strength")
    ax.set_ylabel("mean squared error")
    ax.set_title("Cross-validated choice of the L2 strength")
    fig.legend(loc="outside lower center", ncols=2, fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def _tour_random(r):
    steps = _np.arange(1, len(r["gd"]) + 1)
    fig, axes = _figure(size=(7, 4.5))
    axes[0, 0].axhline(r["start"], color="black", linestyle=":", linewidth=1,
                       label=f"the start (one initialisation), {r['start']:.3f}")
    return plot_curves({"random search: best of n draws": (steps, r["random"]),
                        "gradient descent: after n steps": (steps, r["gd"])},
                       xlabel="evaluations n (draws or steps)",
                       ylabel="training loss (cross-entropy)", logy=True,
                       title=f"Random search against gradient descent, "
                             f"{r['n_params']} weights", ax=axes[0, 0])


def _tour_mnist(r):
    return plot_history(r["history"], title="784-15-10")


def _tour_square(r):
    return plot_descent_1d(lambda x: x * x, {"lr 0.01": r["result"].path},
                           title="y = x^2 from x = 5, lr 0.01")


_TOUR = {
    "square": [("descent_x2.png", _tour_square)],
    "quartic": [("descent_quartic.png", _tour_quartic)],
    "batch": [("batch_modes.png", _tour_batch)],
    "optimizers": [("rosenbrock_optimizers.png", _tour_optimizers),
                   ("rosenbrock_distance.png", _tour_distance),
                   ("saddle_escape.png", _tour_saddle)],
    "mnist": [("training_curves.png", _tour_mnist)],
    "overfitting": [("overfitting.png", _tour_overfitting)],
    "cv": [("cross_validation.png", _tour_cv)],
    "random": [("random_search.png", _tour_random)],
}


def tour_pictures(results: Mapping[str, Any]) -> Dict[str, Callable[..., Any]]:
    """File name -> a function drawing that picture, for the tour sections in
    ``results`` (what ``gdcore.tour.run`` returned) that have pictures."""
    pictures = {}
    for section, items in _TOUR.items():
        if section in results:
            for name, draw in items:
                pictures[name] = (lambda draw=draw, r=results[section]: draw(r))
    return pictures
