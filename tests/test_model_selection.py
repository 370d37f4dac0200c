"""gdcore.model_selection: splits, k-fold indices, cross-validation and grid search."""
import math

import numpy as np
import pytest

import gdcore as gd
from gdcore import model_selection as ms
from gdcore.model_selection import (GridSearchResult, cross_validate, grid_search,
                                    kfold_indices, train_val_test_split)



def numbered(n, n_features=3):
    """X whose row i is (i, i, ...) and T = i + 1000, so every part can be checked
    for which samples it holds and whether X and T stayed aligned."""
    X = np.repeat(np.arange(n, dtype=np.float64)[:, None], n_features, axis=1)
    return X, np.arange(n) + 1000


def ids_of(part):
    X, T = part
    ids = X[:, 0].astype(np.int64)
    np.testing.assert_array_equal(T, ids + 1000)
    return ids


# ---- train_val_test_split -----------------------------------------------------------

@pytest.mark.parametrize("n, val_size, test_size, sizes", [
    (100, 0.15, 0.15, (70, 15, 15)),
    (10, 0.15, 0.15, (6, 2, 2)),         # 1.5 rounds up
    (20, 0.1, 0.3, (12, 2, 6)),
    (100, 10, 5, (85, 10, 5)),           # counts
    (50, 0.2, 7, (33, 10, 7)),           # a fraction and a count
    (7, 0.0, 0.0, (7, 0, 0)),
    (3, 0.01, 0.01, (1, 1, 1)),          # a positive fraction gets at least one sample
])
def test_split_sizes(n, val_size, test_size, sizes):
    X, T = numbered(n)
    parts = train_val_test_split(X, T, val_size=val_size, test_size=test_size, seed=0)
    assert tuple(len(ids_of(p)) for p in parts) == sizes
    for Xp, Tp in parts:
        assert Xp.shape[1:] == X.shape[1:] and Xp.dtype == X.dtype and Tp.dtype == T.dtype


@pytest.mark.parametrize("stratify", [False, True])
def test_split_covers_every_sample_once(stratify):
    X, T = numbered(101)
    labels = np.arange(101) % 3
    parts = train_val_test_split(X, labels if stratify else T, seed=3, stratify=stratify)
    if stratify:
        ids = [p[0][:, 0].astype(np.int64) for p in parts]
        for (Xp, Tp), idx in zip(parts, ids):
            np.testing.assert_array_equal(Tp, idx % 3)
    else:
        ids = [ids_of(p) for p in parts]
    joined = np.concatenate(ids)
    np.testing.assert_array_equal(np.sort(joined), np.arange(101))


def test_split_is_deterministic_for_a_seed():
    X, T = numbered(60)
    a = train_val_test_split(X, T, seed=7)
    b = train_val_test_split(X, T, seed=7)
    c = train_val_test_split(X, T, seed=8)
    for pa, pb in zip(a, b):
        np.testing.assert_array_equal(ids_of(pa), ids_of(pb))
    assert any(not np.array_equal(ids_of(pa), ids_of(pc)) for pa, pc in zip(a, c))
    # shuffled: not simply the first samples in order
    assert not np.array_equal(ids_of(a[0]), np.arange(len(a[0][0])))


def test_split_without_shuffle_is_consecutive():
    X, T = numbered(20)
    train, val, test = train_val_test_split(X, T, val_size=0.25, test_size=0.2,
                                            shuffle=False)
    np.testing.assert_array_equal(ids_of(train), np.arange(0, 11))
    np.testing.assert_array_equal(ids_of(val), np.arange(11, 16))
    np.testing.assert_array_equal(ids_of(test), np.arange(16, 20))


def test_split_accepts_lists_and_nd_inputs():
    X = np.zeros((30, 2, 2))
    T = [i % 2 for i in range(30)]
    (Xtr, Ttr), (Xv, Tv), (Xte, Tte) = train_val_test_split(X, T, seed=0)
    assert Xtr.shape == (20, 2, 2) and Xv.shape == (5, 2, 2) and Xte.shape == (5, 2, 2)
    assert Ttr.shape == (20,)


def test_split_stratified_exact_proportions():
    labels = np.repeat([0, 1, 2], [60, 30, 10])
    X = np.arange(100, dtype=np.float64)[:, None]
    parts = train_val_test_split(X, labels, val_size=0.2, test_size=0.2, seed=1,
                                 stratify=True)
    # 20% of 60, 30 and 10 are whole numbers
    expected = [[36, 18, 6], [12, 6, 2], [12, 6, 2]]
    for (Xp, Tp), counts in zip(parts, expected):
        assert np.bincount(Tp, minlength=3).tolist() == counts
        np.testing.assert_array_equal(Tp, labels[Xp[:, 0].astype(np.int64)])


@pytest.mark.parametrize("seed", range(4))
def test_split_stratified_rounding_stays_within_one(seed):
    rng = np.random.default_rng(seed)
    counts = rng.integers(2, 40, size=5)
    labels = rng.permutation(np.repeat(np.arange(5), counts))
    n = labels.size
    X = np.arange(n, dtype=np.float64)[:, None]
    parts = train_val_test_split(X, labels, val_size=0.17, test_size=0.23, seed=seed,
                                 stratify=True)
    n_val = max(1, math.floor(0.17 * n + 0.5))
    n_test = max(1, math.floor(0.23 * n + 0.5))
    assert [len(p[1]) for p in parts] == [n - n_val - n_test, n_val, n_test]
    for (Xp, Tp), size, slack in zip(parts, [n - n_val - n_test, n_val, n_test], [2, 1, 1]):
        got = np.bincount(Tp, minlength=5)
        # validation and test: each class's proportional share rounded down or up;
        # training takes the rest of each class
        assert np.all(np.abs(got - counts * size / n) < slack)
    # unshuffled stratified parts keep the original order
    (Xtr, _), _, _ = train_val_test_split(X, labels, stratify=True, shuffle=False)
    assert np.all(np.diff(Xtr[:, 0]) > 0)


def test_split_stratified_differs_from_plain_and_is_seeded():
    labels = np.repeat([0, 1], [90, 10])
    X = np.arange(100, dtype=np.float64)[:, None]
    a = train_val_test_split(X, labels, val_size=0.1, test_size=0.1, seed=5, stratify=True)
    b = train_val_test_split(X, labels, val_size=0.1, test_size=0.1, seed=5, stratify=True)
    for (Xa, Ta), (Xb, Tb) in zip(a, b):
        np.testing.assert_array_equal(Xa, Xb)
    assert np.bincount(a[1][1]).tolist() == [9, 1]
    assert np.bincount(a[2][1]).tolist() == [9, 1]


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(val_size=1.0), ValueError, "val_size"),
    (dict(test_size=-0.1), ValueError, "test_size"),
    (dict(val_size=0.6, test_size=0.5), ValueError, "< 1"),
    (dict(val_size=0.5, test_size=0.5), ValueError, "< 1"),
    (dict(val_size=15, test_size=5), ValueError, "none for training"),
    (dict(val_size=25, test_size=0), ValueError, "val_size"),
    (dict(val_size=-1), ValueError, "val_size"),
    (dict(val_size="a lot"), TypeError, "val_size"),
    (dict(test_size=True), TypeError, "test_size"),
    (dict(test_size=None), TypeError, "test_size"),
    (dict(seed=-1), ValueError, "seed"),
    (dict(seed=1.5), TypeError, "seed"),
    (dict(stratify=True), ValueError, "integer class labels"),
])
def test_split_bad_arguments(kwargs, exc, match):
    X = np.zeros((20, 2))
    T = np.linspace(0, 1, 20)
    with pytest.raises(exc, match=match):
        train_val_test_split(X, T, **kwargs)


def test_split_bad_data():
    with pytest.raises(ValueError, match="X has 10 samples but T has 9"):
        train_val_test_split(np.zeros((10, 2)), np.zeros(9))
    with pytest.raises(ValueError, match="no samples"):
        train_val_test_split(np.zeros((0, 2)), np.zeros(0))
    with pytest.raises(TypeError, match="X"):
        train_val_test_split(None, np.zeros(3))
    with pytest.raises(ValueError, match="integer class labels"):
        train_val_test_split(np.zeros((10, 2)), np.zeros((10, 2), dtype=np.int64),
                             stratify=True)


# ---- kfold_indices ------------------------------------------------------------------

@pytest.mark.parametrize("n, k", [(10, 2), (10, 3), (11, 5), (13, 13), (100, 7), (5, 5)])
@pytest.mark.parametrize("shuffle", [True, False])
def test_kfold_properties(n, k, shuffle):
    folds = kfold_indices(n, k, shuffle=shuffle, seed=0)
    assert len(folds) == k
    seen = np.zeros(n, dtype=np.int64)
    sizes = []
    for train, val in folds:
        assert train.dtype == np.int64 and val.dtype == np.int64
        assert np.all(np.diff(train) > 0) and np.all(np.diff(val) > 0)
        np.testing.assert_array_equal(np.sort(np.concatenate([train, val])), np.arange(n))
        seen[val] += 1
        sizes.append(len(val))
    np.testing.assert_array_equal(seen, np.ones(n))
    assert max(sizes) - min(sizes) <= 1
    assert sum(sizes) == n
    # the larger folds come first
    assert sizes == sorted(sizes, reverse=True)


def test_kfold_unshuffled_blocks_and_seeding():
    folds = kfold_indices(7, 3, shuffle=False)
    assert [val.tolist() for _, val in folds] == [[0, 1, 2], [3, 4], [5, 6]]
    assert folds[1][0].tolist() == [0, 1, 2, 5, 6]
    a = kfold_indices(50, 5, seed=11)
    b = kfold_indices(50, 5, seed=11)
    c = kfold_indices(50, 5, seed=12)
    assert all(np.array_equal(x[1], y[1]) for x, y in zip(a, b))
    assert any(not np.array_equal(x[1], y[1]) for x, y in zip(a, c))
    blocks = kfold_indices(50, 5, shuffle=False)
    assert any(not np.array_equal(x[1], y[1]) for x, y in zip(a, blocks))


@pytest.mark.parametrize("args, exc, match", [
    ((10, 1), ValueError, "k"),
    ((3, 4), ValueError, "k=4"),
    ((0, 2), ValueError, "n_samples"),
    ((10, 2.5), TypeError, "k"),
    ((10.0, 2), TypeError, "n_samples"),
])
def test_kfold_bad_arguments(args, exc, match):
    with pytest.raises(exc, match=match):
        kfold_indices(*args)


# ---- training fixtures ----------------------------------------------------------------

def blobs(n=120, seed=0, dtype=np.float32):
    """Two well separated Gaussian blobs in 2-D, labels 0/1."""
    rng = np.random.default_rng(seed)
    T = np.arange(n) % 2
    centers = np.array([[-2.0, -2.0], [2.0, 2.0]])
    X = centers[T] + 0.5 * rng.standard_normal((n, 2))
    return X.astype(dtype), T.astype(np.int64)


def linear_data(n=80, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 3))
    return X, X @ np.array([0.5, -1.0, 2.0]) + 0.1


# ---- cross_validate -----------------------------------------------------------------

def test_cross_validate_scores_each_fold_like_a_manual_run():
    X, T = blobs(60)
    build = lambda: gd.MLP([2, 4, 2], seed=3)  # noqa: E731
    result = cross_validate(build, X, T, k=3, seed=4, epochs=3, batch_size=10)
    assert len(result["val_loss"]) == 3 and len(result["val_accuracy"]) == 3
    assert result["val_loss_mean"] == pytest.approx(np.mean(result["val_loss"]), rel=1e-12)
    assert result["val_loss_std"] == pytest.approx(np.std(result["val_loss"]), rel=1e-12)
    assert result["val_accuracy_mean"] == pytest.approx(np.mean(result["val_accuracy"]),
                                                        rel=1e-12)
    assert result["val_accuracy_std"] == pytest.approx(np.std(result["val_accuracy"]),
                                                       abs=1e-12)
    for (train, val), loss, accuracy in zip(kfold_indices(60, 3, seed=4),
                                            result["val_loss"], result["val_accuracy"]):
        net = build()
        net.fit(X[train], T[train], epochs=3, batch_size=10, progress=False)
        scores = net.evaluate(X[val], T[val])
        assert loss == scores["loss"] and accuracy == scores["accuracy"]


def test_cross_validate_regression_and_fresh_training_objects():
    X, y = linear_data(40)
    opt = gd.optim.SGD(lr=0.05, momentum=0.5)
    schedule = gd.schedules.StepDecay(1, gamma=0.5)
    result = cross_validate(lambda: gd.MLP([3, 1], output="identity", dtype="float64"),
                            X, y, k=4, seed=0, epochs=2, optimizer=opt, lr_schedule=schedule)
    assert set(result) == {"val_loss", "val_loss_mean", "val_loss_std"}
    assert len(result["val_loss"]) == 4 and all(np.isfinite(result["val_loss"]))
    # each fold trained with its own copies: the arguments were never used
    assert opt.step_count == 0 and opt.state == {}
    assert schedule.base_lr is None


def test_cross_validate_bad_build():
    X, T = blobs(20)
    with pytest.raises(TypeError, match="build"):
        cross_validate("mlp", X, T)
    with pytest.raises(TypeError, match="gdcore.MLP"):
        cross_validate(lambda: None, X, T, k=2)
    with pytest.raises(ValueError, match="k"):
        cross_validate(lambda: gd.MLP([2, 2]), X, T, k=1)


# ---- grid_search --------------------------------------------------------------------

def test_grid_search_better_lr_wins_on_separable_data():
    X, T = blobs(120)
    result = grid_search({"lr": [1e-6, 0.5], "optimizer": ["sgd"]}, X, T, epochs=15,
                         batch_size=16, seed=0)
    assert isinstance(result, GridSearchResult)
    assert len(result.table) == 2
    assert result.best_params == {"lr": 0.5, "optimizer": "sgd"}
    best, worst = result.table
    assert best["val_loss"] < worst["val_loss"]
    assert best["val_accuracy"] >= 0.95
    net = result.best_net
    assert isinstance(net, gd.MLP)
    assert net.layer_sizes == [2, *ms.DEFAULT_HIDDEN, 2] and net.dtype == np.float32


def test_grid_search_table_one_row_per_combination_sorted():
    X, T = blobs(80, seed=1)
    Xv, Tv = blobs(40, seed=2)
    grid = {"lr": [1e-4, 1e-2, 0.1], "hidden": [(4,), (3, 3)], "l2": [0.0, 1e-3]}
    result = grid_search(grid, X, T, validation_data=(Xv, Tv), epochs=2, batch_size=20)
    assert len(result.table) == 12
    combos = {(r["lr"], r["hidden"], r["l2"]) for r in result.table}
    assert combos == {(a, b, c) for a in grid["lr"] for b in grid["hidden"] for c in grid["l2"]}
    losses = [r["val_loss"] for r in result.table]
    assert losses == sorted(losses)
    for row in result.table:
        assert set(row) == {"lr", "hidden", "l2", "val_loss", "val_accuracy", "train_loss",
                            "seconds"}
        assert row["seconds"] >= 0 and 0 <= row["val_accuracy"] <= 1
    first = result.table[0]
    assert result.best_params == {k: first[k] for k in ("lr", "hidden", "l2")}
    # the best network is the one scored in the first row, on the given validation data
    assert result.best_net.evaluate(Xv, Tv)["loss"] == first["val_loss"]
    assert result.best_net.evaluate(X, T)["loss"] == first["train_loss"]
    assert result.best_net.layer_sizes == [2, *first["hidden"], 2]
    assert result.param_names == ["lr", "hidden", "l2"]


def test_grid_search_format_table():
    X, T = blobs(40)
    result = grid_search({"lr": [0.01, 0.1], "activation": ["tanh", "relu"]}, X, T,
                         epochs=1, batch_size=None)
    text = result.format_table()
    assert str(result) == text
    lines = text.splitlines()
    assert len(lines) == 2 + 4
    for name in ("rank", "lr", "activation", "val_loss", "val_accuracy", "train_loss",
                 "seconds"):
        assert name in lines[0]
    for rank, (line, row) in enumerate(zip(lines[2:], result.table), start=1):
        fields = line.split()
        assert fields[0] == str(rank) and fields[2] == row["activation"]
        assert float(fields[3]) == pytest.approx(row["val_loss"], rel=1e-3)
    assert "GridSearchResult(4 combinations" in repr(result)


def test_grid_search_validation_split_is_the_seeded_stratified_split():
    X, T = blobs(50)
    T[:20] = 0
    grid = {"lr": [0.01, 0.05]}
    a = grid_search(grid, X, T, validation_split=0.2, seed=3, epochs=2)
    b = grid_search(grid, X, T, validation_split=0.2, seed=3, epochs=2)
    assert [r["val_loss"] for r in a.table] == [r["val_loss"] for r in b.table]
    # the held-out part is train_val_test_split's stratified split for the same seed
    (Xtr, Ttr), val, _ = train_val_test_split(X, T, val_size=0.2, test_size=0, seed=3,
                                              stratify=True)
    c = grid_search(grid, Xtr, Ttr, validation_data=val, seed=3, epochs=2)
    assert [r["val_loss"] for r in a.table] == [r["val_loss"] for r in c.table]
    d = grid_search(grid, X, T, validation_split=0.2, seed=4, epochs=2)
    assert [r["val_loss"] for r in a.table] != [r["val_loss"] for r in d.table]


def test_grid_search_regression_and_optimizers():
    X, y = linear_data(60)
    grid = [{"optimizer": ["sgd", "rmsprop"], "momentum": [0.0, 0.5], "lr": [0.01]},
            {"optimizer": ["adam", "adamw", "adagrad", "adadelta"], "hidden": [()]}]
    result = grid_search(grid, X, y, epochs=2, batch_size=16)
    assert len(result.table) == 4 + 4
    for row in result.table:
        assert "val_accuracy" not in row and math.isfinite(row["val_loss"])
    assert result.best_net.loss_name == "squared_error"
    assert result.best_net.layer_sizes[-1] == 1 and result.best_net.dtype == np.float64
    assert "momentum" in result.format_table() and "-" in result.format_table()
    # float32 inputs with float64 targets: the default network is float32
    r32 = grid_search({"lr": [0.01]}, X.astype(np.float32), y, epochs=1)
    assert r32.best_net.dtype == np.float32


def test_grid_search_with_build_gets_architecture_params_only():
    X, T = blobs(40)
    calls = []

    def build(**params):
        calls.append(params)
        return gd.MLP([2, *params.get("hidden", (5,)), 2], dropout=params.get("dropout"),
                      seed=0)

    result = grid_search({"hidden": [(3,), (6,)], "dropout": [0.0, 0.2], "lr": [0.01],
                          "batch_size": [8], "epochs": [2]}, X, T, build=build)
    assert len(calls) == 4
    assert all(set(c) == {"hidden", "dropout"} for c in calls)
    assert {(c["hidden"], c["dropout"]) for c in calls} == {((3,), 0.0), ((3,), 0.2),
                                                            ((6,), 0.0), ((6,), 0.2)}
    assert len(result.best_net.history) == 2
    with pytest.raises(TypeError, match="gdcore.MLP"):
        grid_search({"lr": [0.1]}, X, T, build=lambda **p: "net", epochs=1)


def test_grid_search_keeps_given_optimizer_and_schedule_unused():
    X, T = blobs(40)
    opt = gd.optim.SGD(lr=0.3, momentum=0.9, nesterov=True)
    schedule = gd.schedules.ExponentialDecay(0.9)
    result = grid_search({"lr": [0.01, 0.02]}, X, T, epochs=2, optimizer=opt,
                         lr_schedule=schedule)
    assert opt.step_count == 0 and schedule.base_lr is None
    used = result.best_net.optimizer
    assert isinstance(used, gd.optim.SGD) and used is not opt
    assert used.momentum == 0.9 and used.nesterov and used.lr in (0.01 * 0.9, 0.02 * 0.9)


@pytest.mark.parametrize("grid, kwargs, exc, match", [
    ({"learning_rate": [0.1]}, {}, ValueError, "unknown names"),
    ({"lr": []}, {}, ValueError, "empty"),
    ({"lr": (0.1, 0.2)}, {}, TypeError, "list"),
    ({"lr": 0.1}, {}, TypeError, "list"),
    ({"lr": [-0.1]}, {}, ValueError, "lr"),
    ({"optimizer": ["lbfgs"]}, {}, ValueError, "optimizer"),
    ({"optimizer": ["adam"], "momentum": [0.9]}, {}, ValueError, "momentum"),
    ({"momentum": [0.9]}, {}, ValueError, "momentum"),
    ({"hidden": [(4, 0)]}, {}, ValueError, "hidden"),
    ({"hidden": ["wide"]}, {}, TypeError, "hidden"),
    ({"activation": ["swish"]}, {}, ValueError, "activation"),
    ({"dropout": [1.0]}, {}, ValueError, "dropout"),
    ({"batch_size": [0]}, {}, ValueError, "batch_size"),
    ({"epochs": [0]}, {}, ValueError, "epochs"),
    ({"l2": [0.1]}, {"l2": 0.2}, ValueError, "both"),
    ({"optimizer": ["sgd"]}, {"optimizer": gd.optim.Adam()}, ValueError, "both"),
    ({"lr": [0.1]}, {"optimizer": "adam"}, TypeError, "optimizer"),
    ([], {}, TypeError, "param_grid"),
    ("lr", {}, TypeError, "param_grid"),
    ({"lr": [0.1]}, {"validation_split": 1.0}, ValueError, "validation_split"),
    ({"lr": [0.1]}, {"validation_data": (np.zeros((3, 2), np.float32),)}, TypeError,
     "validation_data"),
])
def test_grid_search_bad_arguments(grid, kwargs, exc, match):
    X, T = blobs(20)
    with pytest.raises(exc, match=match):
        grid_search(grid, X, T, epochs=1, **kwargs)


def test_grid_search_bad_data_for_default_network():
    X, T = blobs(20)
    with pytest.raises(TypeError, match="float32 or float64"):
        grid_search({"lr": [0.1]}, X.astype(np.int64), T)
    with pytest.raises(TypeError, match="build="):
        grid_search({"lr": [0.1]}, X, T.astype(bool))
    with pytest.raises(ValueError, match="samples"):
        grid_search({"lr": [0.1]}, X, T[:10])


def test_public_names():
    assert set(ms.__all__) == {"train_val_test_split", "kfold_indices", "cross_validate",
                               "grid_search", "GridSearchResult"}
