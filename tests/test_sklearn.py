"""gdcore.sklearn against scikit-learn's own estimators, label/data handling, sample
weights, pickling and parallel model selection."""
import copy
import pickle
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")
import scipy.sparse as sp  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.datasets import make_classification, make_regression  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.neural_network import MLPClassifier as SkMLPClassifier  # noqa: E402
from sklearn.neural_network import MLPRegressor as SkMLPRegressor  # noqa: E402

import gdcore as gd  # noqa: E402
from gdcore import optim  # noqa: E402
from gdcore.sklearn import MLPClassifier, MLPRegressor  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _classification(n_classes=3, n=240, dtype=np.float64):
    X, y = make_classification(n, 8, n_informative=5, n_redundant=1, n_classes=n_classes,
                               random_state=0)
    return X.astype(dtype), y


def _regression(n_targets=2, n=240):
    X, y = make_regression(n, 8, n_targets=n_targets, noise=0.1, random_state=0)
    return X, y / 100.0


def _assert_same_fit(ours, theirs, rtol, atol):
    assert len(ours.coefs_) == len(theirs.coefs_)
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)
    assert ours.n_iter_ == theirs.n_iter_
    assert ours.t_ == theirs.t_
    assert ours.out_activation_ == theirs.out_activation_
    assert ours.n_layers_ == theirs.n_layers_ and ours.n_outputs_ == theirs.n_outputs_
    np.testing.assert_allclose(ours.loss_, theirs.loss_, rtol=max(rtol, 1e-12))
    if hasattr(theirs, "loss_curve_"):
        np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=max(rtol, 1e-12))
        assert ours.best_loss_ == pytest.approx(theirs.best_loss_, rel=max(rtol, 1e-12)) \
            if theirs.best_loss_ is not None else ours.best_loss_ is None
    if getattr(theirs, "validation_scores_", None) is not None:
        np.testing.assert_allclose(ours.validation_scores_, theirs.validation_scores_)
        assert ours.best_validation_score_ == theirs.best_validation_score_


SOLVER_CASES = [
    dict(solver="sgd"),
    dict(solver="sgd", nesterovs_momentum=False, batch_size=64),
    dict(solver="sgd", momentum=0.0, batch_size=50),
    dict(solver="sgd", learning_rate="invscaling", learning_rate_init=0.1),
    dict(solver="sgd", learning_rate="adaptive", tol=0.5, n_iter_no_change=1, max_iter=12),
    dict(solver="adam"),
    dict(solver="adam", shuffle=False, alpha=0.01, batch_size=37),
    dict(solver="adam", early_stopping=True, max_iter=15),
    dict(solver="lbfgs", max_iter=15),
]


@pytest.mark.parametrize("params", SOLVER_CASES, ids=lambda p: "-".join(map(str, p.values())))
@pytest.mark.parametrize("problem", ["multiclass", "binary", "multilabel", "regression"])
def test_matches_scikit_learn_float64(params, problem):
    """Same random_state, same initial weights, batches and split: float64 results equal
    scikit-learn's to rounding."""
    params = dict(dict(hidden_layer_sizes=(10, 7), max_iter=6, random_state=3), **params)
    if problem == "regression":
        X, y = _regression()
        ours, theirs = MLPRegressor(**params), SkMLPRegressor(**params)
    else:
        X, y = _classification(3 if problem == "multiclass" else 2)
        if problem == "multilabel":
            y = np.stack([y, (X[:, 0] > 0).astype(int), (X[:, 1] > 0.5).astype(int)], axis=1)
        ours, theirs = MLPClassifier(**params), SkMLPClassifier(**params)
    ours.fit(X, y)
    theirs.fit(X, y)
    _assert_same_fit(ours, theirs, rtol=1e-9, atol=1e-12)
    if problem == "regression":
        np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=1e-9, atol=1e-12)
    else:
        np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))
        np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X),
                                   rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_matches_scikit_learn_float32(solver):
    X, y = _classification(3, dtype=np.float32)
    params = dict(hidden_layer_sizes=(12,), solver=solver, max_iter=5, random_state=0)
    ours = MLPClassifier(**params).fit(X, y)
    theirs = SkMLPClassifier(**params).fit(X, y)
    # scikit-learn's lbfgs returns float64 weights for float32 data; gdcore keeps float32
    assert ours.coefs_[0].dtype == np.float32
    for a, b in zip(ours.coefs_, theirs.coefs_):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_sample_weight_matches_scikit_learn(solver):
    X, y = _classification(3)
    w = np.random.default_rng(0).uniform(0, 2, len(y))
    params = dict(hidden_layer_sizes=(9,), solver=solver, max_iter=5, random_state=1)
    _assert_same_fit(MLPClassifier(**params).fit(X, y, sample_weight=w),
                     SkMLPClassifier(**params).fit(X, y, sample_weight=w), 1e-9, 1e-12)
    Xr, yr = _regression()
    _assert_same_fit(MLPRegressor(**params).fit(Xr, yr, sample_weight=w),
                     SkMLPRegressor(**params).fit(Xr, yr, sample_weight=w), 1e-9, 1e-12)
    clf = MLPClassifier(**params).fit(X, y)
    expected = np.sum(w * (clf.predict(X) == y)) / np.sum(w)
    assert clf.score(X, y, sample_weight=w) == pytest.approx(expected)


def test_integer_sample_weight_equals_repeated_samples():
    X, y = _classification(3, n=60)
    w = np.random.default_rng(1).integers(0, 3, len(y))
    params = dict(hidden_layer_sizes=(6,), solver="lbfgs", max_iter=30, random_state=0)
    weighted = MLPClassifier(**params).fit(X, y, sample_weight=w)
    repeated = MLPClassifier(**params).fit(np.repeat(X, w, axis=0), np.repeat(y, w))
    for a, b in zip(weighted.coefs_, repeated.coefs_):
        np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("loss,output", [("cross_entropy", "softmax"),
                                         ("binary_cross_entropy", "sigmoid"),
                                         ("squared_error", "identity"),
                                         ("mse", "identity"), ("huber", "identity"),
                                         ("mae", "identity"), ("poisson", "identity")])
@pytest.mark.parametrize("n", [1, 7, 300])
def test_weighted_native_step_matches_reference(dtype, n_threads, loss, output, n):
    """The weighted native step (loss, gradient, update) against its reference twin."""
    rng = np.random.default_rng(n)
    sizes = [5, 6, 4]
    X = rng.standard_normal((n, 5)).astype(dtype)
    if loss == "cross_entropy":
        T = rng.integers(0, 4, n)
    else:
        T = rng.uniform(0, 1, (n, 4)).astype(dtype)
    w = rng.uniform(0, 3, n).astype(dtype)
    w_before = w.copy()
    nets = [gd.MLP(sizes, activation="tanh", output=output, loss=loss, dtype=dtype, seed=2,
                   backend=b) for b in ("native", "reference")]
    opts = [optim.Adam(lr=1e-2), optim.Adam(lr=1e-2, backend="reference")]
    rtol = 1e-4 if dtype == np.float32 else 1e-10
    for _ in range(3):
        losses = [net._step(X, T, opt, True, 0.0, 0.05, 0.0, 0, n_threads, sample_weight=w)
                  for net, opt in zip(nets, opts)]
        assert losses[0] == pytest.approx(losses[1], rel=rtol)
        np.testing.assert_allclose(nets[0].grads, nets[1].grads, rtol=rtol, atol=rtol * 1e-2)
        np.testing.assert_allclose(nets[0].params, nets[1].params, rtol=rtol, atol=rtol * 1e-2)
        for key in opts[0].state:
            np.testing.assert_allclose(opts[0].state[key], opts[1].state[key], rtol=rtol,
                                       atol=rtol * 1e-4)
    np.testing.assert_array_equal(w, w_before)          # weights untouched
    assert opts[0].step_count == opts[1].step_count == 3
    # unit weights give the unweighted step
    plain = gd.MLP(sizes, activation="tanh", output=output, loss=loss, dtype=dtype, seed=2)
    plain.params[...] = nets[0].params
    value = plain._step(X, T, None, True, 0.0, 0.0, 0.0, 0, n_threads)
    grads = plain.grads.copy()
    weighted = plain._step(X, T, None, True, 0.0, 0.0, 0.0, 0, n_threads,
                           sample_weight=np.ones(n, dtype=dtype))
    assert weighted == pytest.approx(value, rel=rtol)
    np.testing.assert_allclose(plain.grads, grads, rtol=rtol, atol=rtol * 1e-3)


def test_weighted_step_rejects_bad_weights():
    net = gd.MLP([3, 2], output="identity", dtype="float64")
    X, T = np.ones((4, 3)), np.ones((4, 2))
    with pytest.raises(ValueError, match="sample_weight"):
        net._step(X, T, None, True, 0.0, 0.0, 0.0, 0, 1, sample_weight=np.ones(3))
    with pytest.raises(ValueError, match="sample_weight"):
        net._step(X, T, None, True, 0.0, 0.0, 0.0, 0, 1,
                  sample_weight=np.ones(4, dtype=np.float32))


# ---- labels, targets and input containers --------------------------------------

@pytest.mark.parametrize("labels", [np.array(["cat", "dog", "emu"]),
                                    np.array([3, 10, 42]),
                                    np.array([True, False])])
def test_any_label_type(labels):
    X, y = _classification(len(labels))
    y_labels = labels[y]
    params = dict(hidden_layer_sizes=(8,), max_iter=20, random_state=0)
    clf = MLPClassifier(**params).fit(X, y_labels)
    ref = SkMLPClassifier(**params).fit(X, y_labels)
    np.testing.assert_array_equal(clf.classes_, np.sort(labels))
    np.testing.assert_array_equal(clf.predict(X), ref.predict(X))
    assert set(np.unique(clf.predict(X))) <= set(labels)
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), len(labels))
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-12)
    np.testing.assert_allclose(clf.predict_log_proba(X), np.log(proba))
    assert clf.score(X, y_labels) == pytest.approx(np.mean(clf.predict(X) == y_labels))


def test_binary_uses_one_logistic_unit():
    X, y = _classification(2)
    clf = MLPClassifier(hidden_layer_sizes=(5,), max_iter=5, random_state=0).fit(X, y)
    assert clf.n_outputs_ == 1 and clf.out_activation_ == "logistic"
    assert clf.coefs_[-1].shape == (5, 1)
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 2)
    np.testing.assert_allclose(proba[:, 1], clf._net.forward(X)[:, 0])
    np.testing.assert_array_equal(clf.predict(X), (proba[:, 1] > 0.5).astype(int))


def test_multilabel_and_multioutput():
    X, y = _classification(2)
    Y = np.stack([y, (X[:, 0] > 0).astype(int)], axis=1)
    clf = MLPClassifier(hidden_layer_sizes=(10,), max_iter=200, random_state=0).fit(X, Y)
    assert clf.out_activation_ == "logistic" and clf.n_outputs_ == 2
    pred = clf.predict(X)
    assert pred.shape == Y.shape and set(np.unique(pred)) <= {0, 1}
    ref = SkMLPClassifier(hidden_layer_sizes=(10,), max_iter=200, random_state=0).fit(X, Y)
    np.testing.assert_array_equal(pred, ref.predict(X))
    assert np.mean(pred == Y) > 0.85
    Xr, Yr = _regression(3)
    reg = MLPRegressor(hidden_layer_sizes=(20,), solver="lbfgs", max_iter=300,
                       random_state=0).fit(Xr, Yr)
    assert reg.predict(Xr).shape == Yr.shape and reg.n_outputs_ == 3
    assert reg.score(Xr, Yr) > 0.95


@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_sparse_equals_dense(solver, fmt):
    X, y = _classification(3)
    X[np.abs(X) < 0.7] = 0
    params = dict(hidden_layer_sizes=(8,), solver=solver, max_iter=4, random_state=0,
                  batch_size=50)
    dense = MLPClassifier(**params).fit(X, y)
    sparse = MLPClassifier(**params).fit(sp.csr_matrix(X).asformat(fmt), y)
    for a, b in zip(dense.coefs_, sparse.coefs_):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(sparse.predict_proba(sp.csr_matrix(X).asformat(fmt)),
                               dense.predict_proba(X), rtol=1e-12)


def test_sparse_densified_one_batch_at_a_time(monkeypatch):
    X, y = _classification(3, n=200)
    X[np.abs(X) < 0.7] = 0
    Xs = sp.csr_matrix(X)
    largest = []
    original = sp.csr_matrix.toarray

    def spy(self, *args, **kwargs):
        largest.append(self.shape[0])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(sp.csr_matrix, "toarray", spy)
    monkeypatch.setattr("gdcore.sklearn.SPARSE_BLOCK_ROWS", 64)
    MLPClassifier(hidden_layer_sizes=(4,), solver="sgd", batch_size=32, max_iter=2,
                  random_state=0).fit(Xs, y)
    assert largest and max(largest) == 32
    largest.clear()
    MLPClassifier(hidden_layer_sizes=(4,), solver="lbfgs", max_iter=2).fit(Xs, y).predict(Xs)
    assert largest and max(largest) == 64


def test_pandas_and_lists():
    pd = pytest.importorskip("pandas")
    X, y = _classification(3)
    df = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    clf = MLPClassifier(hidden_layer_sizes=(6,), max_iter=10, random_state=0).fit(df, y)
    np.testing.assert_array_equal(clf.feature_names_in_, df.columns)
    assert clf.n_features_in_ == X.shape[1]
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        plain = clf.predict(X)
    np.testing.assert_array_equal(clf.predict(df), plain)
    with pytest.warns(UserWarning, match="feature names"):
        MLPClassifier(hidden_layer_sizes=(6,), max_iter=2).fit(X, y).predict(df)
    listed = MLPClassifier(hidden_layer_sizes=(6,), max_iter=10, random_state=0)
    listed.fit(X.tolist(), y.tolist())
    np.testing.assert_array_equal(listed.coefs_[0], MLPClassifier(
        hidden_layer_sizes=(6,), max_iter=10, random_state=0).fit(X, y).coefs_[0])
    reg = MLPRegressor(hidden_layer_sizes=(6,), max_iter=10, random_state=0)
    reg.fit(df, pd.Series(X[:, 0] * 2))
    assert reg.predict(df).shape == (len(df),)


# ---- gdcore extras ------------------------------------------------------------------

def test_dtype_follows_x_or_parameter():
    X, y = _classification(3)
    X32 = X.astype(np.float32)
    assert MLPClassifier(max_iter=2).fit(X32, y).coefs_[0].dtype == np.float32
    assert MLPClassifier(max_iter=2).fit(X, y).coefs_[0].dtype == np.float64
    assert MLPClassifier(max_iter=2).fit(X.astype(int), y).coefs_[0].dtype == np.float64
    clf = MLPClassifier(max_iter=2, dtype="float32").fit(X, y)
    assert clf.coefs_[0].dtype == np.float32 and clf.predict_proba(X).dtype == np.float32
    assert MLPClassifier(max_iter=2, dtype="float64").fit(X32, y).coefs_[0].dtype == np.float64
    with pytest.raises(ValueError, match="dtype"):
        MLPClassifier(dtype=np.int32).fit(X, y)
    with pytest.raises(ValueError, match="dtype"):
        MLPClassifier(dtype="float16").fit(X, y)


def test_dropout_and_threads():
    X, y = _classification(3)
    params = dict(hidden_layer_sizes=(16,), dropout=0.3, max_iter=5, random_state=0)
    a = MLPClassifier(**params, n_threads=1).fit(X, y)
    b = MLPClassifier(**params, n_threads=2).fit(X, y)
    plain = MLPClassifier(**dict(params, dropout=None)).fit(X, y)
    np.testing.assert_array_equal(a.coefs_[0], b.coefs_[0])
    assert not np.array_equal(a.coefs_[0], plain.coefs_[0])
    with pytest.raises(ValueError, match="dropout needs a stochastic solver"):
        MLPClassifier(solver="lbfgs", dropout=0.2).fit(X, y)
    with pytest.raises(ValueError, match="dropout"):
        MLPClassifier(dropout=1.5).fit(X, y)
    with pytest.raises(ValueError, match="n_threads"):
        MLPClassifier(n_threads=0).fit(X, y)


def test_optimizer_instance_as_solver():
    X, y = _classification(3)
    opt = optim.SGD(lr=0.05, momentum=0.5)
    common = dict(hidden_layer_sizes=(8,), batch_size=40, max_iter=3, random_state=0)
    clf = MLPClassifier(solver=opt, **common).fit(X, y)
    assert opt.step_count == 0 and opt.state == {}      # the instance is not trained
    assert clf._optimizer.step_count == 3 * 6
    assert type(clf._optimizer) is optim.SGD
    # torch's SGD with a constant rate is scikit-learn's velocity form
    same = MLPClassifier(solver="sgd", learning_rate_init=0.05, momentum=0.5,
                         nesterovs_momentum=False, **common).fit(X, y)
    _assert_same_fit(clf, same, 1e-9, 1e-12)
    adam = MLPClassifier(solver=optim.Adam(lr=0.01), **common).fit(X, y)
    assert adam.loss_curve_[-1] < adam.loss_curve_[0]


def test_partial_fit_and_solver_availability():
    X, y = _classification(3)
    clf = MLPClassifier(hidden_layer_sizes=(8,), random_state=0)
    ref = SkMLPClassifier(hidden_layer_sizes=(8,), random_state=0)
    for start in range(0, 200, 50):
        clf.partial_fit(X[start:start + 50], y[start:start + 50], classes=[0, 1, 2])
        ref.partial_fit(X[start:start + 50], y[start:start + 50], classes=[0, 1, 2])
    _assert_same_fit(clf, ref, 1e-9, 1e-12)
    assert not hasattr(MLPClassifier(solver="lbfgs"), "partial_fit")
    assert hasattr(MLPClassifier(solver=optim.Adam()), "partial_fit")
    with pytest.raises(ValueError, match="classes"):
        clf.partial_fit(X, np.full(len(y), 7))


def _counts(n=240):
    X, _ = make_regression(n, 8, random_state=0)
    rate = np.exp(0.3 * X[:, 0] - 0.2 * X[:, 1])
    return X, np.random.default_rng(0).poisson(rate).astype(np.float64)


@pytest.mark.parametrize("params", [dict(solver="sgd"), dict(solver="adam", batch_size=50),
                                    dict(solver="adam", early_stopping=True),
                                    dict(solver="lbfgs", max_iter=15)],
                         ids=lambda p: "-".join(map(str, p.values())))
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_poisson_regressor_matches_scikit_learn(params, weighted):
    """loss='poisson': scikit-learn's half Poisson deviance and exp output, from the
    same initial weights; gdcore's network outputs the log rate."""
    X, y = _counts()
    w = np.random.default_rng(1).uniform(0, 2, len(y)) if weighted else None
    params = dict(dict(hidden_layer_sizes=(10, 7), max_iter=6, random_state=3,
                       loss="poisson"), **params)
    ours = MLPRegressor(**params).fit(X, y, sample_weight=w)
    theirs = SkMLPRegressor(**params).fit(X, y, sample_weight=w)
    assert ours.out_activation_ == "exp" and ours._net.loss_name == "poisson"
    _assert_same_fit(ours, theirs, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=1e-9, atol=1e-12)


def test_poisson_regressor_refuses_what_it_cannot_match():
    X, y = _counts()
    with pytest.raises(ValueError, match="supports one output"):
        MLPRegressor(loss="poisson", max_iter=2).fit(X, np.stack([y, y], axis=1))
    with pytest.raises(ValueError, match="y >= 0"):
        MLPRegressor(loss="poisson", max_iter=2).fit(X, y - 1)
    with pytest.raises(ValueError, match="loss"):
        MLPRegressor(loss="huber").fit(X, y)


# ---- pickling, copies, clone, model selection ---------------------------------------

@pytest.mark.parametrize("make", [
    lambda: MLPClassifier(hidden_layer_sizes=(8,), solver="sgd", random_state=0),
    lambda: MLPClassifier(hidden_layer_sizes=(8,), solver="adam", dropout=0.2, random_state=0),
    lambda: MLPRegressor(hidden_layer_sizes=(8,), solver=optim.RMSprop(lr=1e-2),
                         random_state=0, dtype="float32"),
])
@pytest.mark.parametrize("copier", [lambda e: pickle.loads(pickle.dumps(e)), copy.deepcopy])
def test_estimator_round_trip_continues_bitwise(make, copier):
    X, y = _classification(3)
    est = make()
    if isinstance(est, MLPRegressor):
        y = X[:, :2] * 0.5
    for start in range(0, 120, 40):
        est.partial_fit(X[start:start + 40], y[start:start + 40],
                        **({"classes": [0, 1, 2]} if isinstance(est, MLPClassifier) else {}))
    twin = copier(est)
    assert twin.coefs_[0].base is not None     # views of the restored network's buffer
    for e in (est, twin):
        for start in range(120, 240, 40):
            e.partial_fit(X[start:start + 40], y[start:start + 40])
    for a, b in zip(est.coefs_ + est.intercepts_, twin.coefs_ + twin.intercepts_):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(est.predict(X), twin.predict(X))
    assert twin._net.params is not est._net.params


def test_clone_and_unfitted_pickle():
    est = MLPClassifier(hidden_layer_sizes=(5, 3), solver=optim.Adam(lr=0.01), dtype="float32",
                        dropout=[0.1, 0.2], n_threads=1)
    twin = clone(est)
    assert twin.get_params()["hidden_layer_sizes"] == (5, 3)
    assert twin.solver is not est.solver and twin.solver.lr == 0.01
    assert pickle.loads(pickle.dumps(est)).get_params().keys() == est.get_params().keys()
    X, y = _classification(3)
    fitted = est.fit(X, y)
    assert not hasattr(clone(fitted), "coefs_")


@pytest.mark.parametrize("dropout", [None, 0.25])
@pytest.mark.parametrize("opt", [lambda: optim.SGD(lr=0.05, momentum=0.9, nesterov=True),
                                 lambda: optim.Adam(lr=1e-2, amsgrad=True),
                                 lambda: optim.RMSprop(centered=True, momentum=0.5),
                                 lambda: optim.Adagrad(), lambda: optim.Adadelta(),
                                 lambda: optim.AdamW(), lambda: optim.NAdam(),
                                 lambda: optim.Adamax(), lambda: optim.RAdam(),
                                 lambda: optim.Rprop()])
@pytest.mark.parametrize("copier", [lambda o: pickle.loads(pickle.dumps(o)), copy.deepcopy])
def test_mlp_and_optimizer_round_trip_mid_training(dropout, opt, copier):
    X, y = gd.datasets.spirals(n_samples=120)
    net = gd.MLP([2, 16, 3], dropout=dropout, seed=1)
    optimizer = opt()
    net.fit(X, y, epochs=2, batch_size=16, optimizer=optimizer, progress=False)
    twin_net, twin_opt = copier((net, optimizer))
    assert twin_net.optimizer is twin_opt
    assert twin_net._workspace is None
    assert twin_net.layers[0].W.base is not None
    np.testing.assert_array_equal(twin_net.params, net.params)
    for n, o in ((net, optimizer), (twin_net, twin_opt)):
        n.fit(X, y, epochs=2, batch_size=16, progress=False)
        n.train_step(X[:10].astype(np.float32), y[:10], o)
    np.testing.assert_array_equal(twin_net.params, net.params)
    assert twin_opt.step_count == optimizer.step_count
    for key in optimizer.state:
        np.testing.assert_array_equal(twin_opt.state[key], optimizer.state[key])
    # the twin's layers are views of its own buffer
    twin_net.layers[0].W[0, 0] += 1
    assert twin_net.params[0] == twin_net.layers[0].W[0, 0] != net.params[0]


def test_grid_search_parallel():
    X, y = _classification(3, n=150)
    search = GridSearchCV(MLPClassifier(max_iter=30, random_state=0),
                          {"hidden_layer_sizes": [(4,), (16,)], "alpha": [1e-4, 1e-2]},
                          cv=3, n_jobs=2)
    search.fit(X, y)
    assert len(search.cv_results_["params"]) == 4
    serial = GridSearchCV(MLPClassifier(max_iter=30, random_state=0),
                          {"hidden_layer_sizes": [(4,), (16,)], "alpha": [1e-4, 1e-2]},
                          cv=3, n_jobs=1).fit(X, y)
    np.testing.assert_allclose(search.cv_results_["mean_test_score"],
                               serial.cv_results_["mean_test_score"])
    assert isinstance(search.best_estimator_, MLPClassifier)


# ---- gd.MLP meets users half way --------------------------------------------------

def test_mlp_converts_inputs():
    X, y = gd.datasets.spirals()
    assert X.dtype == np.float64
    net = gd.MLP([2, 32, 3], seed=0)
    net.fit(X, y, epochs=1, progress=False)                  # float64 into float32
    twin = gd.MLP([2, 32, 3], seed=0)
    twin.fit(X.astype(np.float32), y.astype(float), epochs=1, progress=False)
    np.testing.assert_array_equal(net.params, twin.params)
    twin2 = gd.MLP([2, 32, 3], seed=0)
    twin2.fit(X.tolist(), y.reshape(-1, 1), epochs=1, progress=False)
    np.testing.assert_array_equal(net.params, twin2.params)
    np.testing.assert_array_equal(net.predict(X), net.predict(X.astype(np.float32)))
    np.testing.assert_array_equal(net.predict(X, batch_size=7), net.predict(X))
    np.testing.assert_array_equal(net.predict_proba(X.astype(np.float16)),
                                  net.predict_proba(X.astype(np.float16).astype(np.float32)))
    assert net.evaluate(X, y.astype(float))["accuracy"] == net.evaluate(X, y)["accuracy"]
    net.partial_fit(X[:5], y[:5].astype(np.float64))
    with pytest.raises(TypeError, match=r"astype\(np.float32\)"):
        net.train_step(X, y, optim.SGD())
    with pytest.raises(ValueError, match="whole numbers"):
        net.fit(X, y + 0.25, progress=False)
    with pytest.raises(TypeError, match="real numbers"):
        net.predict(X.astype(complex))
    with pytest.raises(ValueError, match="batch_size"):
        net.predict(X, batch_size=0)
    reg = gd.MLP([2, 4, 1], output="identity")
    reg.fit(X, X[:, 0], epochs=1, progress=False)
    assert reg.predict(X, batch_size=50).shape == (len(X),)


def test_zero_weight_batches():
    X, y = _classification(3, n=80)
    w = np.ones(len(y))
    w[:40] = 0
    params = dict(hidden_layer_sizes=(5,), solver="sgd", batch_size=20, shuffle=False,
                  max_iter=3, random_state=0)
    skipped = MLPClassifier(**params).fit(X, y, sample_weight=w)
    assert skipped._optimizer.step_count == 3 * 2
    assert np.isfinite(skipped.coefs_[0]).all()
    negative = np.ones(len(y))
    negative[0] = -len(y)
    with pytest.raises(ValueError, match="positive sum"):
        MLPClassifier(solver="lbfgs").fit(X, y, sample_weight=negative)
