"""The estimator's cost over the same training through ``gd.MLP.fit``, beside
scikit-learn's own MLPClassifier, outside asv.

    python benchmarks/sklearn_overhead.py                 # OpenBLAS as set here
    python benchmarks/sklearn_overhead.py --defaults      # scikit-learn's defaults
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/sklearn_overhead.py

For each case (784-15-10 and 784-256-128-10 ReLU, adam and sgd, batch 32, 2 epochs over
60,000 x 784 synthetic float32 samples, 10 classes, 1 thread) it times, interleaved,
``repeats`` fits of

* ``estimator``: ``gdcore.sklearn.MLPClassifier(..., n_threads=1).fit``,
* ``gd.MLP.fit``: the same training written with ``gd.MLP.fit`` (same net, batches,
  epochs; L2 = alpha / batch_size; torch's Adam / SGD with Nesterov momentum),
* ``sklearn``: ``sklearn.neural_network.MLPClassifier.fit`` with the same parameters,

and prints the medians and the ratios estimator / gd.MLP.fit and sklearn / estimator.
``--defaults`` times scikit-learn's default network instead: ``(100,)``, adam, batch
200 (``"auto"`` at this size), 10 epochs.
BLAS is limited to one thread (threadpoolctl) for all three; the OpenBLAS kernel in
use (threadpoolctl's ``architecture``) is printed first.
"""
import argparse
import time
import warnings

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

CASES = [((15,), "adam"), ((15,), "sgd"), ((256, 128), "adam"), ((256, 128), "sgd")]


def make_fits(hidden, solver, X, y, batch, epochs):
    import gdcore as gd
    from sklearn.neural_network import MLPClassifier as SkMLPClassifier
    from gdcore.sklearn import MLPClassifier
    lr = 1e-3 if solver == "adam" else 0.01
    params = dict(hidden_layer_sizes=hidden, solver=solver, batch_size=batch,
                  learning_rate_init=lr, max_iter=epochs, tol=0.0,
                  n_iter_no_change=epochs, random_state=0)

    def estimator():
        MLPClassifier(**params, n_threads=1).fit(X, y)

    def mlp():
        net = gd.MLP([X.shape[1], *hidden, 10], activation="relu", seed=0)
        opt = (gd.optim.Adam(lr=lr) if solver == "adam"
               else gd.optim.SGD(lr=lr, momentum=0.9, nesterov=True))
        net.fit(X, y, epochs=epochs, batch_size=batch, optimizer=opt, l2=1e-4 / batch,
                progress=False, n_threads=1)

    def sklearn():
        SkMLPClassifier(**params).fit(X, y)

    return {"estimator": estimator, "gd.MLP.fit": mlp, "sklearn": sklearn}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=60_000, help="samples")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--defaults", action="store_true",
                        help="scikit-learn's defaults: (100,), adam, batch 200, 10 epochs "
                             "(replaces --batch and --epochs)")
    parser.add_argument("--no-sklearn", action="store_true",
                        help="skip scikit-learn's own estimator (the slow one)")
    args = parser.parse_args()
    cases = CASES
    if args.defaults:
        cases, args.batch, args.epochs = [((100,), "adam")], 200, 10
    threadpool_limits(1)
    archs = sorted({str(i.get("architecture")) for i in threadpool_info()
                    if i.get("internal_api") == "openblas"})
    print(f"OpenBLAS kernels: {', '.join(archs)}; 1 thread; {args.n} x 784 float32, "
          f"batch {args.batch}, {args.epochs} epochs, median of {args.repeats}")
    rng = np.random.default_rng(3)
    X = rng.standard_normal((args.n, 784), dtype=np.float32)
    y = np.random.default_rng(4).integers(0, 10, args.n)
    print(f"{'case':<26}{'estimator ms':>14}{'gd.MLP.fit ms':>15}{'sklearn ms':>12}"
          f"{'est/MLP':>9}{'sk/est':>8}")
    for hidden, solver in cases:
        fits = make_fits(hidden, solver, X, y, args.batch, args.epochs)
        if args.no_sklearn:
            del fits["sklearn"]
        times = {name: [] for name in fits}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for name, fit in fits.items():          # warm-up: imports, first workspace
                if name != "sklearn":
                    fit()
            for _ in range(args.repeats):
                for name, fit in fits.items():
                    start = time.perf_counter()
                    fit()
                    times[name].append(time.perf_counter() - start)
        med = {name: 1e3 * float(np.median(t)) for name, t in times.items()}
        sk = med.get("sklearn", float("nan"))
        name = f"784-{'-'.join(map(str, hidden))}-10 {solver}"
        print(f"{name:<26}{med['estimator']:>14.1f}{med['gd.MLP.fit']:>15.1f}{sk:>12.1f}"
              f"{med['estimator'] / med['gd.MLP.fit']:>9.3f}{sk / med['estimator']:>8.2f}",
              flush=True)


if __name__ == "__main__":
    main()
