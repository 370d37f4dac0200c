"""Data-parallel training on MPI (gdcore.distributed), under ``mpirun -n 2``.

The scenarios run once per session in a subprocess (tests/mpi_scenarios.py); these
tests compare what the two ranks wrote with each other and with one process.
"""
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import gdcore as gd
from gdcore.distributed import shard

HERE = Path(__file__).parent
MPI_MISSING = importlib.util.find_spec("mpi4py") is None


def _mpirun():
    exe = shutil.which("mpirun") or shutil.which("mpiexec")
    if exe is None:
        candidate = Path(sys.executable).parent / "mpirun"
        exe = str(candidate) if candidate.exists() else None
    return exe


needs_mpi = pytest.mark.skipif(
    MPI_MISSING or _mpirun() is None,
    reason="mpi4py and an MPI launcher (pip install 'gdcore[mpi]') are needed for "
           "the mpirun -n 2 tests")


def _scenarios():
    spec = importlib.util.spec_from_file_location("mpi_scenarios", HERE / "mpi_scenarios.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("mpi")
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1")
    cmd = [_mpirun(), "-n", "2", "--oversubscribe", sys.executable,
           str(HERE / "mpi_scenarios.py"), str(out)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    result = []
    for r in range(2):
        with np.load(out / f"rank{r}.npz") as f:
            arrays = dict(f)
        with open(out / f"rank{r}.json") as f:
            result.append((arrays, json.load(f)))
    return result


def _single_process(dtype):
    sc = _scenarios()
    X, T, _, _ = sc.data(dtype)
    net = sc.net_for(dtype)
    hist = net.fit(X, T, epochs=5, batch_size=10, seed=11, optimizer=gd.optim.Adam(lr=1e-2),
                   progress=False)
    return net.params, hist


@needs_mpi
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_ranks_hold_identical_parameters_after_every_step(ranks, dtype):
    (_, m0), (_, m1) = ranks
    for run in (0, 1):
        assert len(m0[f"{dtype}_digests_{run}"]) == 50
        assert m0[f"{dtype}_digests_{run}"] == m1[f"{dtype}_digests_{run}"]
        assert m0[f"{dtype}_loss_{run}"] == m1[f"{dtype}_loss_{run}"]


@needs_mpi
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_seeded_runs_are_bitwise_reproducible(ranks, dtype):
    for arrays, meta in ranks:
        np.testing.assert_array_equal(arrays[f"{dtype}_params_0"], arrays[f"{dtype}_params_1"])
        assert meta[f"{dtype}_digests_0"] == meta[f"{dtype}_digests_1"]


@needs_mpi
@pytest.mark.parametrize("dtype, rtol", [("float64", 1e-10), ("float32", 2e-4)])
def test_agrees_with_one_process_on_the_same_global_batches(ranks, dtype, rtol):
    params, hist = _single_process(dtype)
    arrays, meta = ranks[0]
    distributed = arrays[f"{dtype}_params_0"]
    scale = np.abs(params).max()
    np.testing.assert_allclose(distributed, params, rtol=0, atol=rtol * scale)
    # the parameters moved: the comparison is not between two initialisations
    assert np.abs(params - _scenarios().net_for(dtype).params).max() > 1e-2 * scale
    np.testing.assert_allclose(meta[f"{dtype}_loss_0"], hist.loss, rtol=10 * rtol)


@needs_mpi
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_resume_from_rank0_checkpoint_is_exact(ranks, dtype):
    for arrays, meta in ranks:
        np.testing.assert_array_equal(arrays[f"{dtype}_resumed"], arrays[f"{dtype}_straight"])
        assert meta[f"{dtype}_resumed_val_loss"] == meta[f"{dtype}_val_loss"][3:]
    np.testing.assert_array_equal(ranks[0][0][f"{dtype}_straight"],
                                  ranks[1][0][f"{dtype}_straight"])


@needs_mpi
def test_validation_metrics_are_global_and_drive_the_schedule(ranks):
    sc = _scenarios()
    X, T, Xv, Tv = sc.data("float64")
    net = sc.net_for("float64")
    hist = net.fit(X, T, epochs=6, batch_size=16, optimizer=gd.optim.SGD(lr=0.2, momentum=0.9),
                   validation_data=(Xv, Tv), progress=False,
                   lr_schedule=gd.schedules.ReduceLROnPlateau(patience=0, factor=0.5,
                                                              min_delta=0.05))
    (_, m0), (_, m1) = ranks
    assert m0["float64_val_loss"] == m1["float64_val_loss"]
    assert m0["float64_lr"] == m1["float64_lr"]
    np.testing.assert_allclose(m0["float64_val_loss"], hist.val_loss, rtol=1e-9)
    np.testing.assert_allclose(m0["float64_val_accuracy"], hist.val_accuracy, rtol=1e-12)
    assert m0["float64_lr"] == hist.lr
    assert len(set(hist.lr)) > 1, "the plateau schedule should have lowered the rate"


@needs_mpi
def test_parameter_groups_are_refused_on_every_rank_before_any_update(ranks):
    for _, meta in ranks:
        assert "parameter groups need MLP.fit" in meta["groups_error"]
        assert meta["groups_unchanged"]


@needs_mpi
def test_a_bad_shard_on_one_rank_fails_on_every_rank(ranks):
    (_, m0), (_, m1) = ranks
    assert "4 features" in m1["error"]
    assert "rank 1" in m0["error"] and "4 features" in m0["error"]


@needs_mpi
def test_an_empty_shard_and_penalties_and_dropout(ranks):
    sc = _scenarios()
    X, T, _, _ = sc.data("float64")
    net = sc.net_for("float64")
    net.fit(X, T, epochs=2, batch_size=16, seed=5, l2=1e-3,
            optimizer=gd.optim.SGD(lr=0.1, momentum=0.9), progress=False)
    (a0, _), (a1, _) = ranks
    np.testing.assert_array_equal(a0["empty_shard"], a1["empty_shard"])
    np.testing.assert_allclose(a0["empty_shard"], net.params, rtol=0,
                               atol=1e-10 * np.abs(net.params).max())
    # dropout masks are drawn per rank: equal across ranks, trained, not the 1-process run
    np.testing.assert_array_equal(a0["dropout"], a1["dropout"])
    start = gd.MLP([5, 8, 3], activation="tanh", dtype="float64", seed=3, dropout=0.3)
    assert np.abs(a0["dropout"] - start.params).max() > 1e-3


@needs_mpi
def test_one_rank_equals_the_one_process_fit_bitwise(ranks):
    assert ranks[0][1]["alone_equal"] and ranks[1][1]["alone_equal"]


# ---- without MPI --------------------------------------------------------------------

def test_shard_splits_like_array_split():
    for n in (0, 1, 7, 100):
        for size in (1, 2, 3, 8):
            parts = np.array_split(np.arange(n), size)
            for rank in range(size):
                np.testing.assert_array_equal(np.arange(n)[shard(n, size, rank)], parts[rank])
    with pytest.raises(ValueError, match="rank must be < size"):
        shard(10, 2, 2)


def test_fit_rejects_a_non_communicator():
    net = gd.MLP([2, 2], seed=0)
    with pytest.raises(TypeError, match="comm must be an mpi4py communicator"):
        gd.distributed.fit(net, np.zeros((2, 2), np.float32), np.zeros(2, np.int64), comm=None)
