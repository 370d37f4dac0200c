"""The learner's tour behind ``gdcore demo``: gradient descent from y = x^2 to a
784-15-10 network, one section per topic, in textbook order.

Each section prints what it shows and with which settings (learning rates,
tolerances, iteration caps, whether a run converged or stopped at its cap) and
returns what it computed, so that :func:`draw` can picture it::

    from gdcore import tour
    results = tour.run(["quartic", "optimizers"])       # prints as it goes
    tour.draw(results, "pictures")                      # needs matplotlib

``SECTIONS`` lists the section names in tour order.  Sizes are chosen so that the
whole tour takes well under 20 seconds on two cores; every random draw is seeded, so
the printed figures (except times) repeat from run to run on one machine.
"""
import glob
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

__all__ = ["SECTIONS", "TITLES", "Settings", "run", "draw", "load_mnist"]


def __dir__():
    """Tab completion and ``dir()`` show the public names only."""
    return list(__all__)

SECTIONS = ("square", "quartic", "regression", "batch", "optimizers", "mnist",
            "overfitting", "cv", "random", "speed")

TITLES = {
    "square": "y = x^2 by gradient descent",
    "quartic": "a local and a global minimum: y = x^4 + x^3 - 2x^2",
    "regression": "linear regression: gradient descent against least squares",
    "batch": "batch, stochastic and mini-batch gradient descent",
    "optimizers": "momentum, Nesterov, AdaGrad, AdaDelta, RMSprop, Adam on Rosenbrock",
    "mnist": "a 784-15-10 network on handwritten digits",
    "overfitting": "over-fitting and its cures, measured on held-out data",
    "cv": "choosing a hyperparameter by cross-validation",
    "random": "random search over the weights against gradient descent",
    "speed": "native kernels against the NumPy reference",
}


@dataclass
class Settings:
    """What the tour can be told.

    Parameters
    ----------
    mnist_dir : str, optional
        Folder with the four MNIST IDX files (raw or .gz), or None for the built-in
        ``gd.datasets.synthetic_digits`` of the same shape.
    epochs : int
        Epochs of the 784-15-10 network in the 'mnist' section.
    samples : int
        Training images of the built-in digits (MNIST uses all 60,000).
    progress : bool, optional
        Progress bars during training (None: when stdout is a terminal).
    out : file-like, optional
        Where the text goes (default ``sys.stdout``).
    """

    mnist_dir: Optional[str] = None
    epochs: int = 3
    samples: int = 10_000
    progress: Optional[bool] = False
    out: Any = None
    _digits: Dict[str, Any] = field(default_factory=dict, repr=False)

    def say(self, text: str = "") -> None:
        print(text, file=self.out if self.out is not None else sys.stdout, flush=True)


def _fmt_run(result, cap):
    """'converged after N steps' or 'stopped at the cap of N steps (not converged)'."""
    if result.converged:
        return f"converged after {result.nit} steps"
    return f"stopped at the cap of {cap} steps, NOT converged"


# ---- the sections -----------------------------------------------------------------

def _square(s):
    import gdcore as gd

    lr, tol, cap = 0.01, 0.1, 10_000
    s.say(f"   settings: x0 = 5, lr = {lr}, stop when |dy/dx| < {tol} (cap {cap} steps)")
    res = gd.minimize(lambda x: x * x, 5.0, grad=lambda x: 2 * x, lr=lr, tol=tol,
                      max_iter=cap)
    first = ", ".join(f"{x:.3f}" for x in res.path[1:6])
    s.say(f"   each step multiplies x by 1 - 2 lr = {1 - 2 * lr}: iterates {first}, ...")
    s.say(f"   x = {res.x:.4f} (y = {res.fun:.5f}), {_fmt_run(res, cap)}")
    return {"result": res}


def _quartic_fun(x):
    return x ** 4 + x ** 3 - 2 * x ** 2


def _quartic_grad(x):
    return 4 * x ** 3 + 3 * x ** 2 - 4 * x


def _quartic(s):
    import gdcore as gd

    lr, tol, cap = 0.01, 0.1, 10_000
    # the stationary points solve 4x^2 + 3x - 4 = 0 (besides x = 0, a local maximum)
    roots = np.sort(np.roots([4.0, 3.0, -4.0]).real)
    minima = {"global": float(roots[0]), "local": float(roots[1])}
    s.say(f"   minima: global x = {minima['global']:+.4f} (y = "
          f"{_quartic_fun(minima['global']):+.4f}), local x = {minima['local']:+.4f} "
          f"(y = {_quartic_fun(minima['local']):+.4f})")
    s.say(f"   settings: lr = {lr}, stop when |dy/dx| < {tol} (cap {cap} steps)")
    runs = {}
    for x0 in (4.0, -4.0):
        res = gd.minimize(_quartic_fun, x0, grad=_quartic_grad, lr=lr, tol=tol, max_iter=cap)
        which = min(minima, key=lambda k: abs(minima[k] - res.x))
        runs[x0] = res
        s.say(f"   from x0 = {x0:+.0f}: x = {res.x:+.4f}, y = {res.fun:+.4f}, "
              f"{_fmt_run(res, cap)}: the {which} minimum")
    s.say("   gradient descent stops in the basin it starts in: the start decides")
    return {"runs": runs, "minima": minima}


def _regression(s):
    import gdcore as gd

    x, y = gd.datasets.seven_points()
    lr, tol = 0.05, 1e-8
    by_gd = gd.linear_regression(x, y, method="gd", lr=lr, tol=tol)
    exact = gd.linear_regression(x, y, method="lstsq")
    s.say(f"   the 7-point data set, y = b + w x, mean squared error; gradient descent "
          f"from b = w = 0, lr = {lr}, stop when |gradient| < {tol:g}")
    s.say(f"   gradient descent: b = {by_gd.intercept:.6f}, w = {by_gd.coef[0]:.6f}, "
          f"MSE = {by_gd.mse:.6f}, {'converged' if by_gd.converged else 'NOT converged'} "
          f"after {by_gd.nit} steps")
    s.say(f"   least squares:    b = {exact.intercept:.6f}, w = {exact.coef[0]:.6f}, "
          f"MSE = {exact.mse:.6f}")
    return {"gd": by_gd, "lstsq": exact, "data": (x, y)}


def _digits(s, n_train=None):
    """(X_train, y_train, X_test, y_test, description), built once per Settings."""
    import gdcore as gd

    key = "mnist" if s.mnist_dir else f"synthetic{n_train or s.samples}"
    if key not in s._digits:
        if s.mnist_dir:
            X, y, Xt, yt = load_mnist(s.mnist_dir)
            what = f"MNIST from {s.mnist_dir} ({len(X)} training, {len(Xt)} test images)"
        else:
            n = n_train or s.samples
            X, y = gd.datasets.synthetic_digits(n + 2000, seed=0)
            X, y, Xt, yt = X[:n], y[:n], X[n:], y[n:]
            what = (f"built-in synthetic digits of MNIST's shape (gd.datasets."
                    f"synthetic_digits: 28x28 stroke figures with noise, NOT MNIST; "
                    f"{n} training, {len(Xt)} test images; pass --mnist DIR for MNIST)")
        s._digits[key] = (X, y, Xt, yt, what)
    return s._digits[key]


def load_mnist(directory: str) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """MNIST's four IDX files from ``directory`` as float32 pixels in [0, 1].

    Looks for ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each raw or ``.gz``
    (either ``-idx3-ubyte`` or ``.idx3-ubyte`` spelling).

    Returns
    -------
    X_train, y_train, X_test, y_test : ndarray
        Images flattened to (n, 784) float32, labels int64.

    Raises
    ------
    FileNotFoundError
        Naming the file that is missing.
    ValueError
        When the files' shapes are not MNIST's.
    """
    import gdcore as gd

    def find(stem):
        for pattern in (f"{stem}", f"{stem}.gz", stem.replace("-idx", ".idx"),
                        stem.replace("-idx", ".idx") + ".gz"):
            hits = sorted(glob.glob(os.path.join(directory, pattern)))
            if hits:
                return hits[0]
        raise FileNotFoundError(f"--mnist {directory}: no {stem}[.gz] in that folder")

    arrays = [gd.datasets.load_idx(find(stem)) for stem in (
        "train-images-idx3-ubyte", "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")]
    X, y, Xt, yt = arrays
    if X.ndim != 3 or X.shape[1:] != (28, 28) or Xt.shape[1:] != (28, 28) \
            or y.shape != X.shape[:1] or yt.shape != Xt.shape[:1]:
        raise ValueError(f"--mnist {directory}: the files do not have MNIST's shapes "
                         f"(got {X.shape}, {y.shape}, {Xt.shape}, {yt.shape})")
    scale = np.float32(1 / 255)
    return (X.reshape(len(X), 784).astype(np.float32) * scale, y.astype(np.int64),
            Xt.reshape(len(Xt), 784).astype(np.float32) * scale, yt.astype(np.int64))


def _source(s):
    return "MNIST" if s.mnist_dir else "built-in synthetic digit (not MNIST)"


def _batch(s):
    import gdcore as gd

    X, y, _, _, _ = _digits(s, 3000) if not s.mnist_dir else _digits(s)
    X, y = X[:3000], y[:3000]
    epochs = 8
    # each mode's own learning rate: the best of three tried on the built-in digits
    # (full batch 2, 5, 10; batches of 32: 0.5, 1, 2; single samples: 0.02, 0.05, 0.1)
    modes = {"batch (all 3000)": (None, 2.0), "mini-batch (32)": (32, 2.0),
             "stochastic (1)": (1, 0.1)}
    s.say(f"   784-15-10 sigmoid network, softmax cross-entropy, plain SGD, {epochs} epochs "
          f"over the same {len(X)} {_source(s)} images, same start; each mode with its "
          f"own learning rate (tuned once on the built-in digits); times include "
          f"evaluating the loss of all images after each epoch")
    curves = {}
    for name, (batch_size, lr) in modes.items():
        net = gd.MLP([784, 15, 10], activation="sigmoid", seed=0)
        start_loss = net.loss(X, y)
        t0 = time.perf_counter()
        losses, seconds = [start_loss], [0.0]
        for _ in range(epochs):
            net.fit(X, y, epochs=1, batch_size=batch_size, optimizer=gd.optim.SGD(lr=lr),
                    seed=0, progress=False)
            seconds.append(time.perf_counter() - t0)
            losses.append(net.loss(X, y))   # the full training loss after each epoch
        steps = epochs * (1 if batch_size is None else -(-len(X) // batch_size))
        curves[name] = (np.array(losses), np.array(seconds))
        s.say(f"   {name:17s} lr {lr:<4g} {steps:6d} updates: loss {start_loss:.3f} -> "
              f"{losses[-1]:.4f} in {seconds[-1]:.2f} s")
    by_epoch = min(curves, key=lambda k: curves[k][0][-1])
    t_common = min(seconds[-1] for _, seconds in curves.values())
    at_time = {k: losses[np.searchsorted(seconds, t_common, side="right") - 1]
               for k, (losses, seconds) in curves.items()}
    by_time = min(at_time, key=at_time.get)
    s.say(f"   lowest loss after {epochs} epochs: {by_epoch}; lowest loss after "
          f"{t_common:.2f} s (the fastest mode's total): {by_time} "
          f"({', '.join(f'{k.split()[0]} {val:.3f}' for k, val in at_time.items())})")
    return {"curves": curves, "lr": {k: lr for k, (_, lr) in modes.items()}}


def _optimizers(s):
    import gdcore as gd
    from gdcore.testfunctions import rosenbrock

    tol = 1e-4
    s.say(f"   Rosenbrock from (-1.5, 2) to its minimum (1, 1); stop when |gradient| < "
          f"{tol:g} or at each optimizer's cap")
    paths = gd.trajectories.optimizer_paths(rosenbrock, tol=tol)
    for name, res in paths.items():
        cap = gd.trajectories.ROSENBROCK[name][1]
        opt = gd.trajectories.ROSENBROCK[name][0]()
        distance = float(np.max(np.abs(np.asarray(res.x) - 1)))
        s.say(f"   {name:9s} {_hyper(opt):45s} distance {distance:.1e}, "
              f"{_fmt_run(res, cap)}")
    capped = [name for name, res in paths.items() if not res.converged]
    s.say("   learning rates and caps are tuned per optimizer for this function "
          "(gd.trajectories.ROSENBROCK)" + (f"; at its cap, {', '.join(capped)} is "
                                             f"near (1, 1) but its gradient is not yet "
                                             f"below the tolerance" if capped else ""))
    return {"paths": paths}


def _hyper(opt):
    """'lr=..., ' plus the hyperparameters set away from the class defaults."""
    defaults = type(opt)._defaults
    parts = [f"lr={opt.lr:g}"]
    for key, value in opt.hyperparameters.items():
        if key != "lr" and defaults.get(key) != value:
            parts.append(f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}")
    return f"{type(opt).__name__}(" + ", ".join(parts) + ")"


def _mnist(s):
    import gdcore as gd

    X, y, Xt, yt, what = _digits(s)
    lr = 0.5
    s.say(f"   data: {what}")
    s.say(f"   784-15-10: sigmoid hidden layer, softmax output, cross-entropy; SGD lr = "
          f"{lr}, mini-batches of 32, {s.epochs} epochs ({15 * 785 + 10 * 16} weights)")
    net = gd.MLP([784, 15, 10], activation="sigmoid", seed=0)
    history = net.fit(X, y, epochs=s.epochs, batch_size=32, optimizer=gd.optim.SGD(lr=lr),
                      validation_data=(Xt, yt), progress=s.progress)
    for k in range(len(history)):
        s.say(f"   epoch {k + 1}: training loss {history.loss[k]:.4f}, test loss "
              f"{history.val_loss[k]:.4f}, test accuracy {history.val_accuracy[k]:.2%} "
              f"({history.seconds[k]:.2f} s)")
    return {"history": history, "net": net}


def _sine_data():
    import gdcore as gd

    X, y = gd.datasets.sine(30, noise=0.3, seed=1)
    Xt, yt = gd.datasets.sine(1000, noise=0.3, seed=2)
    f32 = np.float32
    return X.astype(f32), y.astype(f32)[:, None], Xt.astype(f32), yt.astype(f32)[:, None]


_CURES = {
    "none": ({}, {}),
    "L2 1e-3": ({"l2": 1e-3}, {}),
    "L1 1e-4": ({"l1": 1e-4}, {}),
    "dropout 0.2": ({}, {"dropout": 0.2}),
    "input noise 0.2": ({"input_noise": 0.2}, {}),
}


def _sine_net(**kwargs):
    import gdcore as gd

    return gd.MLP([1, 64, 64, 1], activation="tanh", output="identity", loss="mse",
                  seed=0, **kwargs)


def _overfitting(s):
    import gdcore as gd

    X, y, Xt, yt = _sine_data()
    epochs, lr = 2000, 0.01
    s.say(f"   y = sin(x) + N(0, 0.3^2): {len(X)} training points, {len(Xt)} held-out "
          f"points; a 1-64-64-1 tanh network (4,353 weights), full-batch Adam lr = {lr}, "
          f"{epochs} epochs")
    s.say("   the noise alone gives a mean squared error of 0.09: below that on training "
          "data is memorised noise")
    fits = {}
    for name, (fit_kw, net_kw) in _CURES.items():
        net = _sine_net(**net_kw)
        net.fit(X, y, epochs=epochs, batch_size=None, optimizer=gd.optim.Adam(lr=lr),
                progress=False, **fit_kw)
        train, test = net.evaluate(X, y)["loss"], net.evaluate(Xt, yt)["loss"]
        fits[name] = (net, train, test)
        s.say(f"   {name:16s} training MSE {train:.3f}   held-out MSE {test:.3f}")
    best = min(fits, key=lambda k: fits[k][2])
    s.say(f"   without a cure the held-out error is {fits['none'][2] / fits['none'][1]:.1f}x "
          f"the training error; the best cure here, {best}, changes the held-out error "
          f"by {fits[best][2] / fits['none'][2] - 1:+.0%}")
    return {"fits": fits, "data": (X, y, Xt, yt)}


def _cv(s):
    import gdcore as gd

    X, y, Xt, yt = _sine_data()
    grid, k, epochs, lr = [0.0, 1e-4, 1e-3, 1e-2], 5, 1000, 0.01
    s.say(f"   the L2 strength for the sine network by {k}-fold cross-validation on the "
          f"{len(X)} training points only (full-batch Adam lr = {lr}, {epochs} epochs)")
    scores = {}
    for l2 in grid:
        cv = gd.model_selection.cross_validate(
            _sine_net, X, y, k=k, seed=0, epochs=epochs, batch_size=None,
            optimizer=gd.optim.Adam(lr=lr), l2=l2)
        scores[l2] = (cv["val_loss_mean"], cv["val_loss_std"])
        s.say(f"   l2 = {l2:<7g} cross-validated MSE {cv['val_loss_mean']:.3f} "
              f"+- {cv['val_loss_std']:.3f}")
    chosen = min(scores, key=lambda l2: scores[l2][0])
    net = _sine_net()
    net.fit(X, y, epochs=epochs, batch_size=None, optimizer=gd.optim.Adam(lr=lr),
            progress=False, l2=chosen)
    test = net.evaluate(Xt, yt)["loss"]
    s.say(f"   chosen l2 = {chosen:g}; refitted on all {len(X)} points, held-out MSE "
          f"{test:.3f} (the held-out points were not used to choose)")
    return {"scores": scores, "chosen": chosen, "test": test}


def _random(s):
    import gdcore as gd

    rng = np.random.default_rng(0)
    budget = 300
    s.say(f"   each method gets {budget} evaluations: random search draws {budget} "
          f"weight vectors and keeps the best; gradient descent makes {budget} steps")
    x, y = gd.datasets.seven_points()
    draws = rng.uniform(-3, 3, size=(budget, 2))
    A = np.hstack([np.ones((len(x), 1)), x])
    mse = np.mean((draws @ A.T - y) ** 2, axis=1)
    exact = gd.linear_regression(x, y, method="lstsq").mse
    s.say(f"   2 weights (line through the 7 points, weights in [-3, 3]): best random "
          f"MSE {mse.min():.4f}, least squares {exact:.4f}: random search works")

    X, yd, _, _, _ = _digits(s, 3000) if not s.mnist_dir else _digits(s)
    X, yd = X[:1000], yd[:1000]
    net = gd.MLP([784, 15, 10], activation="sigmoid", seed=0)
    start = net.params.copy()
    best_accuracy = 0.0
    n_params = net.n_params
    random_best = []
    best = np.inf
    for k in range(budget):
        # a draw: the weights of a fresh initialisation (Glorot-uniform, as the network's
        # own start), i.e. random search over the region gradient descent starts in
        net.params[:] = gd.MLP([784, 15, 10], activation="sigmoid", seed=1 + k).params
        loss = net.loss(X, yd)
        if loss < best:
            best, best_accuracy = loss, net.evaluate(X, yd)["accuracy"]
        random_best.append(best)
    net.params[:] = start
    start_loss = net.loss(X, yd)
    gd_loss = [start_loss]
    opt = gd.optim.SGD(lr=0.5)
    order = np.random.default_rng(1).permutation(len(X))
    for step in range(budget):
        rows = order[(step * 32) % len(X):(step * 32) % len(X) + 32]
        net.train_step(X[rows], yd[rows], opt)
        gd_loss.append(net.loss(X, yd))
    s.say(f"   {n_params} weights (784-15-10 on {len(X)} {_source(s)} images; a draw is a fresh "
          f"Glorot initialisation): start loss {start_loss:.3f}, best random loss "
          f"{random_best[-1]:.3f} (accuracy {best_accuracy:.1%}), gradient descent (SGD "
          f"lr 0.5, batches of 32) {gd_loss[-1]:.3f} (accuracy "
          f"{net.evaluate(X, yd)['accuracy']:.1%}); chance is 10%")
    s.say("   in thousands of dimensions a random point is almost never much better than "
          "the start; the gradient points the way down at every step")
    return {"random": np.array(random_best), "gd": np.array(gd_loss[1:]),
            "n_params": n_params, "start": start_loss}


def _speed(s):
    import gdcore as gd

    X, y, _, _, _ = _digits(s)
    X, y = X[:4000], y[:4000]
    s.say(f"   one epoch of the 784-15-10 network on {len(X)} images, mini-batches of 32, "
          f"SGD; {gd.get_num_threads()} thread(s), {gd.kernels.ISA} build")
    times = {}
    for backend in ("native", "reference"):
        net = gd.MLP([784, 15, 10], activation="sigmoid", seed=0, backend=backend)
        runs = []
        for _ in range(3):
            t0 = time.perf_counter()
            net.fit(X, y, epochs=1, batch_size=32, optimizer=gd.optim.SGD(lr=0.5),
                    progress=False)
            runs.append(time.perf_counter() - t0)
        times[backend] = float(np.median(runs))
    s.say(f"   median of 3 epochs: native {times['native'] * 1e3:.1f} ms, reference "
          f"{times['reference'] * 1e3:.1f} ms -> the native backend is "
          f"{times['reference'] / times['native']:.1f}x faster (one run on this machine; "
          f"`gdcore bench` measures more carefully)")
    return {"times": times}


_RUNNERS: Dict[str, Callable[[Settings], Dict[str, Any]]] = {
    "square": _square, "quartic": _quartic, "regression": _regression, "batch": _batch,
    "optimizers": _optimizers, "mnist": _mnist, "overfitting": _overfitting, "cv": _cv,
    "random": _random, "speed": _speed,
}


def run(sections: Optional[Sequence[str]] = None,
        settings: Optional[Settings] = None) -> Dict[str, Dict[str, Any]]:
    """Run tour sections in tour order, printing as they go.

    Parameters
    ----------
    sections : sequence of str, optional
        Names from ``SECTIONS``; default all.  They run in tour order whatever the
        order given.
    settings : Settings, optional

    Returns
    -------
    dict
        Section name -> what the section computed (used by :func:`draw`).
    """
    settings = Settings() if settings is None else settings
    wanted = SECTIONS if sections is None else list(sections)
    unknown = [name for name in wanted if name not in SECTIONS]
    if unknown:
        raise ValueError(f"sections must be names from {', '.join(SECTIONS)}; got "
                         f"{', '.join(map(repr, unknown))}")
    results = {}
    for number, name in enumerate(SECTIONS, 1):
        if name not in wanted:
            continue
        settings.say(f"{number}. {TITLES[name]}  [--section {name}]")
        started = time.perf_counter()
        results[name] = _RUNNERS[name](settings)
        settings.say(f"   ({time.perf_counter() - started:.1f} s)")
    return results


def draw(results: Dict[str, Dict[str, Any]], directory: str,
         say: Optional[Callable[[str], None]] = None) -> List[str]:
    """Save the pictures of the sections in ``results`` as PNG files in ``directory``.

    Returns the paths written.  Needs matplotlib.
    """
    from . import plot

    os.makedirs(directory, exist_ok=True)
    written = []
    for name, picture in plot.tour_pictures(results).items():
        target = os.path.join(directory, name)
        fig = picture()
        fig.savefig(target, format="png")
        written.append(target)
        if say is not None:
            say(f"   wrote {target}")
    return written
