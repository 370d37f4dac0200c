"""gdcore.callbacks and fit's metrics=: early stopping on any History key, model
checkpoints, the CSV log, accuracy/mae/r2 against scikit-learn."""
import csv

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, mean_absolute_error, r2_score

import gdcore as gd
from gdcore import callbacks, training
from gdcore.training import History, metric_values


def clf_data(n=60, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    return X, (X[:, 0] - X[:, 1] > 0).astype(np.int64)


def reg_data(n=60, n_out=2, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    W = rng.normal(size=(4, n_out))
    return X, X @ W + 0.1 * rng.normal(size=(n, n_out))


def fake_history(key, values):
    h = History()
    for e, val in enumerate(values):
        h._append(epoch=e, loss=1.0, **{key: val})
    return h


def drive(cb, key, values, recorded=None):
    """Feed ``values`` of ``key`` epoch by epoch; the epoch it asks to stop, or None."""
    h = History()
    h.recorded = tuple(recorded or (*History.KEYS, key))

    class Net:
        params = np.zeros(1)
    cb.on_train_begin(Net(), h)
    for e, val in enumerate(values):
        Net.params[0] = e
        h._append(**{"epoch": e, "loss": 1.0, key: val})
        if cb.on_epoch_end(h):
            return e, h
    return None, h


# ---- EarlyStopping ----------------------------------------------------------------------

def test_early_stopping_is_the_same_class_everywhere():
    assert gd.EarlyStopping is training.EarlyStopping is callbacks.EarlyStopping


def test_early_stopping_max_mode_on_val_accuracy():
    es = gd.EarlyStopping(patience=2, monitor="val_accuracy")       # auto -> max
    stop, h = drive(es, "val_accuracy", [0.5, 0.7, 0.7, 0.6, 0.9])
    assert stop == 3 and h.best_epoch == 1 and h.stop_reason == "early_stopping"
    es = gd.EarlyStopping(patience=2, monitor="val_accuracy", min_delta=0.15)
    stop, h = drive(es, "val_accuracy", [0.5, 0.6, 0.64, 0.8])
    assert stop == 2 and h.best_epoch == 0


def test_early_stopping_min_mode_and_explicit_modes():
    stop, h = drive(gd.EarlyStopping(patience=1, monitor="loss"), "loss", [3.0, 2.0, 2.5])
    assert stop == 2 and h.best_epoch == 1
    # mode overrides the name-based guess
    stop, h = drive(gd.EarlyStopping(patience=1, monitor="val_loss", mode="max"),
                    "val_loss", [1.0, 2.0, 1.5])
    assert stop == 2 and h.best_epoch == 1
    stop, h = drive(gd.EarlyStopping(patience=1, monitor="r2"), "r2", [0.1, 0.2, 0.15],
                    recorded=(*History.KEYS, "r2"))
    assert stop == 2 and h.best_epoch == 1


def test_early_stopping_nan_never_improves():
    stop, h = drive(gd.EarlyStopping(patience=2, monitor="loss"), "loss",
                    [float("nan"), 1.0, float("nan"), float("inf")])
    assert stop == 3 and h.best_epoch == 1


def test_early_stopping_unknown_monitor_fails_before_training():
    X, y = clf_data()
    net = gd.MLP([4, 3, 2], seed=0)
    before = net.params.copy()
    with pytest.raises(ValueError, match="'r2' is not recorded"):
        net.fit(X, y, epochs=2, early_stopping=gd.EarlyStopping(monitor="r2"))
    with pytest.raises(ValueError, match="mae"):
        net.fit(X, y, epochs=2, callbacks=[gd.EarlyStopping(monitor="val_mae")])
    np.testing.assert_array_equal(net.params, before)
    assert net.epochs_trained == 0 and net.optimizer is None
    with pytest.raises(ValueError, match="mode"):
        gd.EarlyStopping(mode="up")
    with pytest.raises(TypeError, match="monitor"):
        gd.EarlyStopping(monitor=3)


def test_val_accuracy_falls_back_to_training_accuracy_without_validation():
    X, y = clf_data()
    net = gd.MLP([4, 3, 2], seed=0)
    es = gd.EarlyStopping(patience=100, monitor="val_accuracy", restore_best_weights=False)
    h = net.fit(X, y, epochs=4, metrics=["accuracy"], callbacks=[es])
    assert es.best == max(h.accuracy)


@pytest.mark.parametrize("backend", ["native", "reference"])
def test_best_checkpoint_equals_restored_best_weights(tmp_path, backend):
    X, y = clf_data(80)
    net = gd.MLP([4, 6, 2], seed=1, backend=backend)
    path = tmp_path / "best.npz"
    ckpt = gd.ModelCheckpoint(path, monitor="val_accuracy", save_best_only=True)
    es = gd.EarlyStopping(monitor="val_accuracy", patience=3)
    h = net.fit(X, y, epochs=15, batch_size=8, validation_split=0.25,
                optimizer=gd.optim.SGD(lr=0.05), early_stopping=es, callbacks=[ckpt])
    best = gd.load(path)
    assert best.epochs_trained == h.best_epoch + 1
    assert best.history.val_accuracy[-1] == max(h.val_accuracy)
    np.testing.assert_array_equal(best.params, net.params)    # restored by EarlyStopping
    assert ckpt.saved == [str(path)] * len(ckpt.saved) and ckpt.saved


# ---- ModelCheckpoint ----------------------------------------------------------------------

def test_checkpoint_every_k_epochs_resumes_exactly(tmp_path):
    X, y = clf_data()
    net = gd.MLP([4, 5, 2], seed=0, dropout=0.2)
    ckpt = gd.ModelCheckpoint(tmp_path / "e{epoch}.npz", every=2)
    net.fit(X, y, epochs=5, batch_size=16, callbacks=[ckpt])
    assert [p.rsplit("/", 1)[1] for p in ckpt.saved] == ["e1.npz", "e3.npz"]
    resumed = gd.load(tmp_path / "e3.npz")
    assert resumed.epochs_trained == 4
    resumed.fit(X, y, epochs=1, batch_size=16)
    np.testing.assert_array_equal(resumed.params, net.params)
    assert resumed.history.loss == net.history.loss


def test_checkpoint_failed_save_keeps_previous_file(tmp_path, monkeypatch):
    X, y = clf_data()
    net = gd.MLP([4, 5, 2], seed=0)
    path = tmp_path / "last.npz"
    net.fit(X, y, epochs=1, callbacks=[gd.ModelCheckpoint(path)])
    saved = gd.load(path).params.copy()

    def broken(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(np, "savez", broken)
    with pytest.raises(OSError, match="disk full"):
        net.fit(X, y, epochs=1, callbacks=[gd.ModelCheckpoint(path)])
    monkeypatch.undo()
    np.testing.assert_array_equal(gd.load(path).params, saved)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.npz"]


def test_checkpoint_bad_arguments():
    with pytest.raises(TypeError, match="path"):
        gd.ModelCheckpoint(3)
    with pytest.raises(ValueError, match="epoch"):
        gd.ModelCheckpoint("x{step}.npz")
    with pytest.raises(ValueError, match="every"):
        gd.ModelCheckpoint("x.npz", every=0)


# ---- CSVLogger ------------------------------------------------------------------------------

def test_csv_logger_rows_equal_history(tmp_path):
    X, y = clf_data()
    path = tmp_path / "log.csv"
    net = gd.MLP([4, 5, 2], seed=0)
    h = net.fit(X, y, epochs=3, metrics=["accuracy"], validation_split=0.2,
                callbacks=[gd.CSVLogger(path)])
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["epoch", "loss", "val_loss", "val_accuracy", "lr", "seconds",
                             "accuracy"]
    assert len(rows) == 3
    for key in rows[0]:
        assert [float(r[key]) for r in rows] == [float(x) for x in h[key]]
    # append continues the same file; a run recording other keys is refused
    net.fit(X, y, epochs=2, metrics=["accuracy"], validation_split=0.2,
            callbacks=[gd.CSVLogger(path, append=True)])
    with open(path, newline="") as f:
        assert [int(r["epoch"]) for r in csv.DictReader(f)] == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="columns"):
        net.fit(X, y, epochs=1, callbacks=[gd.CSVLogger(path, append=True)])
    # without validation data the val_ columns are left out
    net.fit(X, y, epochs=1, callbacks=[gd.CSVLogger(path)])
    with open(path) as f:
        assert f.readline().strip() == "epoch,loss,lr,seconds"


def test_csv_logger_bad_arguments():
    with pytest.raises(ValueError, match="separator"):
        gd.CSVLogger("x.csv", separator=";;")
    with pytest.raises(TypeError, match="path"):
        gd.CSVLogger(None)


# ---- metrics= ------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["native", "reference"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_accuracy_metric_matches_sklearn(backend, dtype):
    X, y = clf_data(70)
    Xv, yv = clf_data(30, seed=1)
    net = gd.MLP([4, 5, 2], seed=0, backend=backend, dtype=dtype)
    h = net.fit(X, y, epochs=2, metrics="accuracy", validation_data=(Xv, yv))
    assert h.accuracy[-1] == accuracy_score(y, net.predict(X))
    assert h.val_accuracy[-1] == accuracy_score(yv, net.predict(Xv))
    assert "val_accuracy" in h.recorded and "mae" not in h


@pytest.mark.parametrize("backend", ["native", "reference"])
@pytest.mark.parametrize("n_out", [1, 3])
def test_mae_r2_match_sklearn(backend, n_out):
    X, T = reg_data(50, n_out)
    Xv, Tv = reg_data(20, n_out, seed=1)
    net = gd.MLP([4, 6, n_out], seed=0, loss="mse", output="identity", backend=backend,
                 dtype="float64")
    h = net.fit(X, T, epochs=2, metrics=("mae", "r2"), validation_data=(Xv, Tv))
    Y, Yv = net.forward(X), net.forward(Xv)
    assert h.mae[-1] == pytest.approx(mean_absolute_error(T, Y), rel=1e-12)
    assert h.r2[-1] == pytest.approx(r2_score(T, Y), rel=1e-12)
    assert h.val_mae[-1] == pytest.approx(mean_absolute_error(Tv, Yv), rel=1e-12)
    assert h.val_r2[-1] == pytest.approx(r2_score(Tv, Yv), rel=1e-12)
    assert h.val_accuracy == [None, None]


def test_metric_values_blocks_and_constant_targets(monkeypatch):
    X, T = reg_data(25, 2)
    T[:, 1] = 3.0                                   # constant column: r2 0 unless exact
    net = gd.MLP([4, 3, 2], seed=0, loss="mse", output="identity", dtype="float64")
    whole = metric_values(net, X, T, ("mae", "r2"))
    monkeypatch.setattr(training, "METRIC_BLOCK_ROWS", 4)
    blocked = metric_values(net, X, T, ("mae", "r2"))
    assert blocked["mae"] == pytest.approx(whole["mae"], rel=1e-13)
    assert blocked["r2"] == pytest.approx(whole["r2"], rel=1e-13)
    assert whole["r2"] == pytest.approx(r2_score(T, net.forward(X)), rel=1e-12)


def test_binary_accuracy_metric():
    X, y = clf_data()
    net = gd.MLP([4, 3, 1], seed=0, loss="binary_cross_entropy")
    h = net.fit(X, y.astype(float), epochs=1, metrics=["accuracy"])
    assert h.accuracy[-1] == accuracy_score(y, net.predict(X))


@pytest.mark.parametrize("kwargs, metrics, error, match", [
    ({}, ["accuracy", "accuracy"], ValueError, "twice"),
    ({}, ["f1"], ValueError, "metrics"),
    ({}, ["r2"], ValueError, "real-valued"),
    ({"loss": "mse", "output": "identity"}, ["accuracy"], ValueError, "classifier"),
    ({}, 3, TypeError, "metrics"),
])
def test_bad_metrics(kwargs, metrics, error, match):
    X, y = clf_data()
    net = gd.MLP([4, 3, 2], seed=0, **kwargs)
    T = y if not kwargs else X[:, :2]
    with pytest.raises(error, match=match):
        net.fit(X, T, epochs=1, metrics=metrics)
    assert net.epochs_trained == 0


def test_metric_history_survives_save_load_and_later_fits(tmp_path):
    X, y = clf_data()
    net = gd.MLP([4, 3, 2], seed=0)
    net.fit(X, y, epochs=2)
    net.fit(X, y, epochs=2, metrics=["accuracy"])
    assert net.history.accuracy[:2] == [None, None] and None not in net.history.accuracy[2:]
    net.save(tmp_path / "n.npz")
    back = gd.load(tmp_path / "n.npz")
    assert back.history.as_dict() == net.history.as_dict()


def test_history_extend_pads_missing_keys():
    a = fake_history("accuracy", [0.5])
    b = fake_history("mae", [0.1, 0.2])
    a.extend(b)
    assert a.accuracy == [0.5, None, None] and a.mae == [None, 0.1, 0.2]
    with pytest.raises(ValueError, match="unknown History key"):
        History(["keys"])


def test_callbacks_see_rollback_free_state_and_end_hook_runs():
    X, y = clf_data()
    seen = []

    class Recorder(callbacks.Callback):
        def on_train_begin(self, net, history):
            self.net = net
            seen.append(("begin", net.epochs_trained))

        def on_epoch_end(self, history):
            seen.append(("epoch", self.net.epochs_trained, history.epoch[-1]))
            return history.epoch[-1] == 1

        def on_train_end(self, history):
            seen.append(("end", history.stop_reason))

    gd.MLP([4, 3, 2], seed=0).fit(X, y, epochs=5, callbacks=[Recorder()])
    assert seen == [("begin", 0), ("epoch", 1, 0), ("epoch", 2, 1), ("end", "callback")]


def test_distributed_fit_refuses_what_it_cannot_apply():
    MPI = pytest.importorskip("mpi4py.MPI")
    X, y = clf_data(20)
    net = gd.MLP([4, 3, 2], seed=0)
    before = net.params.copy()
    for kwargs, match in [
        ({"lr_schedule": gd.schedules.OneCycle(10)}, "unit='step'"),
        ({"early_stopping": gd.EarlyStopping(monitor="val_accuracy")}, "stops early"),
        ({"callbacks": [gd.CSVLogger("unused.csv")]}, "needs MLP.fit"),
    ]:
        with pytest.raises(ValueError, match=match):
            gd.distributed.fit(net, X.astype(np.float32), y, comm=MPI.COMM_SELF, epochs=1,
                               **kwargs)
    np.testing.assert_array_equal(net.params, before)


def test_callbacks_module_shows_only_public_names():
    assert sorted(dir(callbacks)) == sorted(callbacks.__all__)
    assert {"Callback", "EarlyStopping", "ModelCheckpoint", "CSVLogger"} == set(callbacks.__all__)
