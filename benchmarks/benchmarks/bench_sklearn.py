"""gdcore.sklearn's estimators beside scikit-learn's own, in the same run.

* ``TimeEstimatorFit``: ``fit`` on 60,000 x 784 synthetic float32 samples (10 classes),
  1 thread, for ``impl``:
    - ``gdcore``: ``gdcore.sklearn.MLPClassifier``,
    - ``sklearn``: ``sklearn.neural_network.MLPClassifier`` with the same parameters,
    - ``gdcore_mlp``: the same training written directly with ``gd.MLP.fit`` (same
      net, batches, epochs, L2 = alpha / batch_size; torch's Adam/SGD), the floor the
      estimator's loop is measured against.
  Configurations: the textbook net ``(15,)`` at batch 32 with adam and with sgd
  (2 epochs), and scikit-learn's defaults ``(100,)``, adam, batch 200 (10 epochs).
  ``tol=0`` and ``n_iter_no_change=max_iter`` so every run makes all its epochs.
* ``TimeWeightedStep``: one training step with ``sample_weight`` (the weighted loss
  and delta the estimators' weighted and last, smaller batches run, through
  ``MLP._step`` as they call it), native beside its reference twin, and the native
  unweighted step beside them (``weighted=False``: the cost of the weights), Adam,
  float32, 1 thread.
* ``TrackDigitsAccuracy``: test-split accuracy on scikit-learn's digits (75/25 split,
  ``random_state=0``, inputs scaled to [0, 1]) with scikit-learn's default estimator
  settings and ``random_state=0``, for ``gdcore`` and ``sklearn``.
"""
import warnings

import numpy as np

from .common import ThreadLimits, matrix

# name -> (estimator parameters, epochs)
CONFIGS = {
    "textbook_15_adam_b32": (dict(hidden_layer_sizes=(15,), solver="adam", batch_size=32), 2),
    "textbook_15_sgd_b32": (dict(hidden_layer_sizes=(15,), solver="sgd", batch_size=32,
                                 learning_rate_init=0.01), 2),
    "defaults_100_adam_b200": (dict(hidden_layer_sizes=(100,), solver="adam",
                                    batch_size=200), 10),
}
IMPLS = ["gdcore", "sklearn", "gdcore_mlp"]


def _require_sklearn():
    """Skip the rows (NotImplementedError) in an environment without scikit-learn."""
    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise NotImplementedError("scikit-learn is not installed here") from None


class TimeEstimatorFit:
    params = (IMPLS, list(CONFIGS))
    param_names = ["impl", "config"]
    timeout = 900
    repeat = (1, 3, 120.0)
    number = 1
    N = 60_000

    def setup(self, impl, config):
        _require_sklearn()
        self.limits = ThreadLimits(1).start()
        self.X = matrix(self.N, 784, "float32", seed=3)
        self.y = np.random.default_rng(4).integers(0, 10, self.N)
        params, epochs = CONFIGS[config]
        params = dict(params, max_iter=epochs, tol=0.0, n_iter_no_change=epochs,
                      random_state=0)
        self.params, self.epochs = params, epochs
        if impl == "sklearn":
            from sklearn.neural_network import MLPClassifier
            self.estimator = MLPClassifier(**params)
        elif impl == "gdcore":
            from gdcore.sklearn import MLPClassifier
            self.estimator = MLPClassifier(**params, n_threads=1)
        else:
            import gdcore as gd
            self.gd = gd
            self.estimator = None

    def teardown(self, *params):
        limits = getattr(self, "limits", None)
        if limits is not None:
            limits.stop()

    def time_fit(self, impl, config):
        if self.estimator is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.estimator.fit(self.X, self.y)
            return
        gd, p = self.gd, self.params
        net = gd.MLP([784, *p["hidden_layer_sizes"], 10], activation="relu", seed=0)
        if p["solver"] == "adam":
            opt = gd.optim.Adam(lr=1e-3)
        else:
            opt = gd.optim.SGD(lr=p["learning_rate_init"], momentum=0.9, nesterov=True)
        net.fit(self.X, self.y, epochs=self.epochs, batch_size=p["batch_size"],
                optimizer=opt, l2=1e-4 / p["batch_size"], progress=False, n_threads=1)


# name -> (layer sizes, batch)
WEIGHTED_NETS = {"784-15-10_b32": ([784, 15, 10], 32),
                 "784-256-128-10_b128": ([784, 256, 128, 10], 128)}


class TimeWeightedStep:
    params = (["native", "reference"], list(WEIGHTED_NETS), [True, False])
    param_names = ["backend", "network", "weighted"]
    timeout = 120

    def setup(self, backend_name, network, weighted):
        import gdcore as gd
        self.limits = ThreadLimits(1).start()
        sizes, batch = WEIGHTED_NETS[network]
        self.net = gd.MLP(sizes, activation="relu", dtype="float32", seed=0,
                          backend=backend_name)
        self.opt = gd.optim.Adam(lr=1e-3, backend=backend_name)
        self.X = matrix(batch, sizes[0], "float32", seed=1)
        self.T = np.random.default_rng(2).integers(0, sizes[-1], batch)
        self.w = (np.random.default_rng(3).uniform(0.5, 2.0, batch).astype(np.float32)
                  if weighted else None)
        self.l2 = 1e-4 / batch
        for _ in range(3):          # workspace, optimizer state, the stall guard's steps
            self.time_step(backend_name, network, weighted)

    def teardown(self, *params):
        limits = getattr(self, "limits", None)
        if limits is not None:
            limits.stop()

    def time_step(self, backend_name, network, weighted):
        self.net._step(self.X, self.T, self.opt, True, 0.0, self.l2, 0.0, 0, 1,
                       sample_weight=self.w)


class TrackDigitsAccuracy:
    params = (["gdcore", "sklearn"],)
    param_names = ["impl"]
    timeout = 300
    unit = "accuracy"

    def setup(self, impl):
        _require_sklearn()
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
        X, y = load_digits(return_X_y=True)
        self.split = train_test_split(X / 16.0, y, test_size=0.25, random_state=0,
                                      stratify=y)

    def track_accuracy(self, impl):
        if impl == "sklearn":
            from sklearn.neural_network import MLPClassifier
        else:
            from gdcore.sklearn import MLPClassifier
        X_train, X_test, y_train, y_test = self.split
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf = MLPClassifier(random_state=0).fit(X_train, y_train)
        return clf.score(X_test, y_test)
