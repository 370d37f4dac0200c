"""Many runs at once: grid_search and cross_validate with n_jobs on joblib (and Dask)."""
import importlib.util
import sys

import numpy as np
import pytest

import gdcore as gd
from gdcore import _parallel
from gdcore.model_selection import cross_validate, grid_search

joblib = pytest.importorskip("joblib", reason="n_jobs needs joblib (pip install joblib)")


def _data(n=120, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4)).astype(np.float64)
    T = (X[:, 0] * X[:, 1] > 0).astype(np.int64) + (X[:, 2] > 1)
    return X, T


def build_net(hidden=(8,), activation="tanh"):
    """A module-level build function, as workers import it."""
    return gd.MLP([4, *hidden, 3], activation=activation, dtype="float64", seed=5)


def _strip(table):
    return [{k: x for k, x in row.items() if k != "seconds"} for row in table]


def _same_net(a, b):
    np.testing.assert_array_equal(a.params, b.params)
    assert a.epochs_trained == b.epochs_trained
    history_a, history_b = a.history.as_dict(), b.history.as_dict()
    assert len(history_a.pop("seconds")) == len(history_b.pop("seconds"))
    assert history_a == history_b
    assert a.optimizer.step_count == b.optimizer.step_count
    for key in a.optimizer.state:
        np.testing.assert_array_equal(a.optimizer.state[key], b.optimizer.state[key])
    assert a._rng.bit_generator.state == b._rng.bit_generator.state


GRID = {"lr": [1e-2, 5e-2], "hidden": [(6,), (10,)]}


@pytest.mark.parametrize("with_build", [False, True])
def test_grid_search_n_jobs_2_equals_serial_bitwise(with_build):
    X, T = _data()
    kwargs = dict(epochs=3, seed=1, batch_size=16,
                  lr_schedule=gd.schedules.StepDecay(step_size=1, gamma=0.5))
    if with_build:
        kwargs.update(build=build_net, optimizer=gd.optim.SGD(lr=0.1, momentum=0.9))
    serial = grid_search(GRID, X, T, **kwargs)
    parallel = grid_search(GRID, X, T, n_jobs=2, **kwargs)
    assert _strip(parallel.table) == _strip(serial.table)
    assert parallel.best_params == serial.best_params
    _same_net(parallel.best_net, serial.best_net)
    assert parallel.best_net.lr_schedule.state_dict() == serial.best_net.lr_schedule.state_dict()
    # the rebuilt network continues training exactly as the one trained here
    for net in (serial.best_net, parallel.best_net):
        net.fit(X, T, epochs=1, batch_size=16, progress=False)
    _same_net(parallel.best_net, serial.best_net)


def test_cross_validate_n_jobs_2_equals_serial_bitwise():
    X, T = _data()
    kwargs = dict(k=3, seed=2, epochs=2, batch_size=8, optimizer=gd.optim.Adam(lr=1e-2))
    serial = cross_validate(build_net, X, T, **kwargs)
    parallel = cross_validate(build_net, X, T, n_jobs=2, **kwargs)
    assert parallel == serial
    assert len(set(serial["val_loss"])) == 3


def _thread_settings():
    from threadpoolctl import threadpool_info
    return gd.get_num_threads(), sorted({p["num_threads"] for p in threadpool_info()})


def test_workers_limit_their_threads_to_their_share():
    cores = joblib.cpu_count()
    settings = _parallel.run(_thread_settings, [()] * 2, n_jobs=2)
    share = max(1, cores // 2)
    for library, pools in settings:
        assert library == share
        assert max(pools) <= share
    # an explicit worker_threads wins over the share (up to the usable CPUs, the
    # library's own clamp)
    forced = _parallel.run(_thread_settings, [()] * 2, n_jobs=2, worker_threads=cores)
    assert [library for library, _ in forced] == [cores, cores]
    assert _parallel.threads_per_worker(joblib, 2, 1) == cores      # one task: all cores
    assert _parallel.threads_per_worker(joblib, -1, 100) == 1


def test_n_jobs_errors(monkeypatch):
    X, T = _data(30)
    with pytest.raises(ValueError, match="n_jobs must be a non-zero int"):
        grid_search({"lr": [0.1]}, X, T, n_jobs=0, epochs=1)
    with pytest.raises(TypeError, match="n_jobs"):
        cross_validate(build_net, X, T, k=2, n_jobs="two", epochs=1)
    with pytest.raises(ValueError, match="worker_threads must be >= 1"):
        cross_validate(build_net, X, T, k=2, n_jobs=2, worker_threads=0, epochs=1)
    monkeypatch.setitem(sys.modules, "joblib", None)
    with pytest.raises(ImportError, match="pip install joblib.*n_jobs=1"):
        cross_validate(build_net, X, T, k=2, n_jobs=2, epochs=1)
    # n_jobs=1 needs no joblib
    assert len(cross_validate(build_net, X, T, k=2, epochs=1)["val_loss"]) == 2


def test_rebuilt_network_must_match():
    net = build_net()
    state = _parallel.net_state(net)
    with pytest.raises(ValueError, match="same architecture"):
        _parallel.restore_net(build_net(hidden=(3,)), state)


@pytest.mark.skipif(importlib.util.find_spec("distributed") is None,
                    reason="dask.distributed is not installed (pip install 'gdcore[dask]')")
def test_grid_search_on_a_dask_local_cluster_equals_serial():
    from dask.distributed import Client, LocalCluster
    X, T = _data()
    kwargs = dict(epochs=2, seed=1, batch_size=16, build=build_net)
    serial = grid_search(GRID, X, T, **kwargs)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        with joblib.parallel_config(backend="dask"):
            on_dask = grid_search(GRID, X, T, n_jobs=2, **kwargs)
        workers = client.run(lambda: gd.get_num_threads())
    assert len(workers) == 2
    assert _strip(on_dask.table) == _strip(serial.table)
    _same_net(on_dask.best_net, serial.best_net)
