"""Pictures of gradient descent (needs matplotlib: ``pip install gdcore[plot]``).

    gd.plot.plot_history(history, "curves.png")
    gd.plot.plot_paths(gd.testfunctions.rosenbrock,
                       gd.trajectories.optimizer_paths(gd.testfunctions.rosenbrock),
                       "rosenbrock.png")
    gd.plot.plot_descent_1d(lambda x: x**2, gd.minimize(lambda x: x**2, 5.0).path,
                            "descent.png")

Each function draws on a new figure (or on ``ax`` when given), saves a PNG when
``path`` is given, and returns the matplotlib Figure.  Figures are made with
matplotlib's object-oriented API and the Agg canvas: no window, no pyplot state.
"""
import numpy as np

__all__ = ["plot_history", "plot_paths", "plot_descent_1d"]

_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf"]


def _figure(ax, size=(7, 5)):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("gdcore.plot needs matplotlib: pip install 'gdcore[plot]'") from None
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=size, dpi=100)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot(1, 1, 1)


def _save(fig, path):
    if path is not None:
        fig.tight_layout()
        fig.savefig(path, format="png")
    return fig


def plot_history(history, path=None, ax=None, title="Training"):
    """Training and validation loss per epoch (and validation accuracy on a second
    axis when present) from a ``gdcore.History``."""
    fig, ax = _figure(ax)
    epochs = np.asarray(history.epoch) + 1
    ax.plot(epochs, history.loss, label="training loss", color=_COLORS[0])
    if any(val is not None for val in history.val_loss):
        ax.plot(epochs, [np.nan if val is None else val for val in history.val_loss],
                label="validation loss", color=_COLORS[1])
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_yscale("log" if min(history.loss, default=1) > 0 else "linear")
    ax.set_title(title)
    lines, labels = ax.get_legend_handles_labels()
    if any(val is not None for val in history.val_accuracy):
        acc = ax.twinx()
        acc.plot(epochs, [np.nan if val is None else val for val in history.val_accuracy],
                 label="validation accuracy", color=_COLORS[2], linestyle="--")
        acc.set_ylabel("accuracy")
        more_lines, more_labels = acc.get_legend_handles_labels()
        lines, labels = lines + more_lines, labels + more_labels
    ax.legend(lines, labels, loc="best")
    return _save(fig, path)


def plot_paths(function, paths, path=None, ax=None, bounds=None, levels=30, title=None):
    """Contour plot of a 2-D test function with optimizer paths overlaid and labelled.

    Parameters
    ----------
    function : a gdcore.testfunctions function (``grid``, ``bounds``, ``minima``)
    paths : dict name -> MinimizeResult or (n, 2) array of iterates
    bounds : ((x0, x1), (y0, y1)), optional
        Default: the function's bounds.
    levels : int
        Contour levels, log-spaced when the function is non-negative.
    """
    fig, ax = _figure(ax, size=(8, 6))
    (x0, x1), (y0, y1) = function.bounds if bounds is None else bounds
    xs, ys = np.linspace(x0, x1, 300), np.linspace(y0, y1, 300)
    X, Y = np.meshgrid(xs, ys)
    Z = function.grid(X, Y)
    if np.min(Z) >= 0:
        z_min = function.minimum_value if function.minimum_value is not None else np.min(Z)
        shifted = Z - z_min + 1e-3
        ax.contour(X, Y, shifted, levels=np.logspace(np.log10(shifted.min()),
                                                     np.log10(shifted.max()), levels),
                   cmap="viridis", linewidths=0.6)
    else:
        ax.contour(X, Y, Z, levels=levels, cmap="viridis", linewidths=0.6)
    for i, (name, result) in enumerate(paths.items()):
        points = np.asarray(getattr(result, "path", result), dtype=np.float64)
        color = _COLORS[i % len(_COLORS)]
        ax.plot(points[:, 0], points[:, 1], "-", color=color, linewidth=1.4, label=name)
        ax.plot(points[-1, 0], points[-1, 1], "o", color=color, markersize=4)
    for point in function.minima:
        ax.plot(point[0], point[1], "*", color="black", markersize=12)
    first = next(iter(paths.values()), None)
    if first is not None:
        start = np.asarray(getattr(first, "path", first))[0]
        ax.plot(start[0], start[1], "s", color="black", markersize=6, label="start")
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title(title or f"Optimizers on the {function.name.capitalize()} function")
    ax.legend(loc="best", fontsize=8)
    return _save(fig, path)


def plot_descent_1d(fun, iterates, path=None, ax=None, bounds=None, title=None):
    """A 1-D function with the iterates of a descent marked on it and joined in order.

    ``iterates`` is a 1-D array (``minimize(...).path`` for a scalar x0)."""
    fig, ax = _figure(ax)
    points = np.asarray(iterates, dtype=np.float64).reshape(-1)
    if bounds is None:
        lo, hi = float(points.min()), float(points.max())
        pad = 0.2 * max(hi - lo, 1.0)
        bounds = (lo - pad, hi + pad)
    xs = np.linspace(bounds[0], bounds[1], 400)
    ax.plot(xs, [fun(float(x)) for x in xs], color=_COLORS[0], label="f(x)")
    values = [fun(float(x)) for x in points]
    ax.plot(points, values, "-o", color=_COLORS[3], markersize=3, linewidth=0.8,
            label=f"descent ({len(points) - 1} steps)")
    ax.plot(points[0], values[0], "s", color="black", label="start")
    ax.set_xlabel("x")
    ax.set_ylabel("f(x)")
    ax.set_title(title or "Gradient descent in one dimension")
    ax.legend(loc="best")
    return _save(fig, path)
