"""The ``gdcore`` command (also ``python -m gdcore``).

    gdcore demo [--plot DIR]    textbook examples, then an MLP trained on built-in data
    gdcore bench [--quick]      native against reference (and PyTorch, when installed)
    gdcore info                 gd.show_config()
"""
import argparse
import os
import sys
import time

import numpy as np

__all__ = ["main"]


def _print(*args):
    print(*args, flush=True)


# ---- demo ------------------------------------------------------------------------

def _textbook(args):
    import gdcore as gd
    from gdcore.testfunctions import rosenbrock

    _print("1. y = x^2 from x0 = 5, lr = 0.01, until |dy/dx| < 0.1")
    square = gd.minimize(lambda x: x * x, 5.0, grad=lambda x: 2 * x, lr=0.01, tol=0.1)
    first = ", ".join(f"{x:.3f}" for x in square.path[1:6])
    _print(f"   iterates {first}, ...; x = {square.x:.4f} after {square.nit} steps")

    quartic = lambda x: x ** 4 + x ** 3 - 2 * x ** 2
    quartic_grad = lambda x: 4 * x ** 3 + 3 * x ** 2 - 4 * x
    _print("2. y = x^4 + x^3 - 2x^2, lr = 0.01, until |dy/dx| < 0.1")
    runs = {}
    for x0 in (4.0, -4.0):
        runs[x0] = gd.minimize(quartic, x0, grad=quartic_grad, lr=0.01, tol=0.1)
        _print(f"   from x0 = {x0:+.0f}: x = {runs[x0].x:+.4f} after {runs[x0].nit} steps "
               f"({'local' if runs[x0].x > 0 else 'global'} minimum's basin)")

    _print("3. linear regression y = b + w x on the 7-point data set")
    x, y = gd.datasets.seven_points()
    by_gd = gd.linear_regression(x, y, method="gd", lr=0.05)
    exact = gd.linear_regression(x, y, method="lstsq")
    _print(f"   gradient descent: b = {by_gd.intercept:.6f}, w = {by_gd.coef[0]:.6f} "
           f"({by_gd.nit} steps);  least squares: b = {exact.intercept:.6f}, "
           f"w = {exact.coef[0]:.6f}")

    _print("4. seven optimizers on Rosenbrock from (-1.5, 2)")
    paths = gd.trajectories.optimizer_paths(rosenbrock, tol=1e-4)
    for name, result in paths.items():
        distance = float(np.max(np.abs(np.asarray(result.x) - 1)))
        _print(f"   {name:9s} after {result.nit:5d} steps: distance to (1, 1) = {distance:.1e}")
    return square, runs, paths


def _train(args):
    import gdcore as gd

    X, y = gd.datasets.spirals(n_samples=args.samples, n_classes=3, noise=0.2, seed=0)
    X = X.astype(np.float32)
    n_test = len(X) // 5
    X_train, y_train, X_test, y_test = X[n_test:], y[n_test:], X[:n_test], y[:n_test]
    sizes = [2, 128, 128, 3]
    _print(f"5. an MLP {'-'.join(map(str, sizes))} (ReLU, softmax cross-entropy, Adam) on "
           f"{len(X_train)} spiral points, {args.epochs} epochs of mini-batches of 32")
    net = gd.MLP(sizes, activation="relu", seed=0)
    started = time.perf_counter()
    history = net.fit(X_train, y_train, epochs=args.epochs, batch_size=32,
                      optimizer=gd.optim.Adam(lr=3e-3), validation_split=0.1,
                      progress=args.progress)
    native_time = (time.perf_counter() - started) / max(len(history), 1)
    accuracy = net.evaluate(X_test, y_test)["accuracy"]
    _print(f"   held-out accuracy: {accuracy:.1%}")

    reference = gd.MLP(sizes, activation="relu", seed=0, backend="reference")
    epochs = max(1, min(3, args.epochs))
    started = time.perf_counter()
    reference.fit(X_train, y_train, epochs=epochs, batch_size=32,
                  optimizer=gd.optim.Adam(lr=3e-3), validation_split=0.1, progress=False)
    reference_time = (time.perf_counter() - started) / epochs
    _print(f"   one epoch: native {native_time * 1e3:.1f} ms, reference "
           f"{reference_time * 1e3:.1f} ms -> the native backend is "
           f"{reference_time / native_time:.1f}x faster ({gd.get_num_threads()} threads, "
           f"{gd.kernels.ISA} build)")
    return net, history, accuracy


def _plots(directory, square, runs, paths, history):
    import gdcore as gd
    from gdcore import plot
    from gdcore.testfunctions import rosenbrock, saddle

    os.makedirs(directory, exist_ok=True)
    files = {
        "training_curves.png": lambda p: plot.plot_history(history, p),
        "rosenbrock_optimizers.png": lambda p: plot.plot_paths(rosenbrock, paths, p),
        "saddle_escape.png": lambda p: plot.plot_paths(
            saddle, gd.trajectories.optimizer_paths(saddle, steps=150, optimizers={
                "SGD": gd.optim.SGD(lr=0.01), "Momentum": gd.optim.SGD(lr=0.01, momentum=0.9),
                "Nesterov": gd.optim.SGD(lr=0.01, momentum=0.9, nesterov=True),
                "Adagrad": gd.optim.Adagrad(lr=0.1), "Adadelta": gd.optim.Adadelta(lr=1.0),
                "RMSprop": gd.optim.RMSprop(lr=0.01), "Adam": gd.optim.Adam(lr=0.05)}),
            p, title="Escaping the saddle of x^2 - y^2"),
        "descent_x2.png": lambda p: plot.plot_descent_1d(
            lambda x: x * x, square.path, p, title="y = x^2 from 5, lr 0.01"),
        "descent_quartic.png": lambda p: plot.plot_descent_1d(
            lambda x: x ** 4 + x ** 3 - 2 * x ** 2,
            np.concatenate([runs[4.0].path, runs[-4.0].path]), p, bounds=(-4.2, 4.2),
            title="x^4 + x^3 - 2x^2 from +4 and -4"),
    }
    for name, draw in files.items():
        target = os.path.join(directory, name)
        draw(target)
        _print(f"   wrote {target}")


def demo(args):
    import gdcore as gd

    _print(f"gdcore {gd.__version__}: gradient descent, from y = x^2 to a neural network\n")
    square, runs, paths = _textbook(args)
    net, history, accuracy = _train(args)
    if args.plot:
        _print("6. pictures")
        _plots(args.plot, square, runs, paths, history)
    return 0


# ---- bench -------------------------------------------------------------------------

def bench(args):
    from gdcore import bench as benchmarks

    rows = benchmarks.run(quick=args.quick, threads=args.threads)
    _print(benchmarks.format_table(rows))
    return 0


def info(args):
    import gdcore as gd

    gd.show_config()
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="gdcore", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="textbook examples and an MLP on built-in data")
    p.add_argument("--plot", metavar="DIR", help="save the pictures (PNG) in DIR")
    p.add_argument("--epochs", type=int, default=40, help="training epochs (default 40)")
    p.add_argument("--samples", type=int, default=3000, help="spiral points (default 3000)")
    p.add_argument("--no-progress", dest="progress", action="store_false",
                   help="no progress bar")
    p.set_defaults(func=demo, progress=None)
    p = sub.add_parser("bench", help="native against reference, side by side")
    p.add_argument("--quick", action="store_true", help="fewer repetitions, small sizes")
    p.add_argument("--threads", type=int, default=None,
                   help="threads for gdcore and the BLAS (default: gdcore's setting)")
    p.set_defaults(func=bench)
    p = sub.add_parser("info", help="version, OpenMP, threads, BLAS")
    p.set_defaults(func=info)
    args = parser.parse_args(argv)
    if getattr(args, "epochs", 1) < 1 or getattr(args, "samples", 30) < 30:
        parser.error("--epochs must be >= 1 and --samples >= 30")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
