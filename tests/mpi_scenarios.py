"""Scenarios run under ``mpirun -n 2`` by tests/test_distributed.py.

Usage: mpirun -n 2 python tests/mpi_scenarios.py OUT_DIR
Each rank writes OUT_DIR/rank<r>.npz with its parameters after every step (as
digests), its final parameters and histories; the test compares the ranks with each
other and with one process.
"""
import hashlib
import json
import os
import sys

import numpy as np
from mpi4py import MPI

import gdcore as gd
from gdcore.distributed import fit

# Unequal shards: rank 0 holds the first 37 samples, rank 1 the other 63.
N, SPLIT = 100, 37
N_VAL, SPLIT_VAL = 30, 11


def data(dtype):
    rng = np.random.default_rng(7)
    X = rng.normal(size=(N + N_VAL, 5)).astype(dtype)
    T = (X[:, 0] - X[:, 1] > 0).astype(np.int64) + (X[:, 2] > 0.5)
    return X[:N], T[:N], X[N:], T[N:]


def local(A, split, total, rank, size):
    if size == 1:
        return A
    return A[:split] if rank == 0 else A[split:total]


def net_for(dtype, seed=3):
    return gd.MLP([5, 8, 3], activation="tanh", dtype=dtype, seed=seed)


def digest(a):
    return hashlib.sha256(a.tobytes()).hexdigest()


def main(out_dir):
    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    out = {}
    meta = {}
    for dtype in ("float64", "float32"):
        X, T, Xv, Tv = data(dtype)
        Xl, Tl = local(X, SPLIT, N, rank, size), local(T, SPLIT, N, rank, size)
        # 50 steps: 5 epochs of 10 global batches of 10
        for run in (0, 1):
            net = net_for(dtype)
            digests = []
            hist = fit(net, Xl, Tl, comm=comm, epochs=5, batch_size=10, seed=11,
                       optimizer=gd.optim.Adam(lr=1e-2),
                       step_callback=lambda step, loss: digests.append(digest(net.params)))
            out[f"{dtype}_params_{run}"] = net.params.copy()
            meta[f"{dtype}_digests_{run}"] = digests
            meta[f"{dtype}_loss_{run}"] = hist.loss
        # validation, early stopping, a plateau schedule and checkpoints
        Xvl = local(Xv, SPLIT_VAL, N_VAL, rank, size)
        Tvl = local(Tv, SPLIT_VAL, N_VAL, rank, size)
        path = os.path.join(out_dir, f"ckpt_{dtype}.npz")

        def run_validated(net, epochs, checkpoint=None, optimizer=None):
            return fit(net, Xl, Tl, comm=comm, epochs=epochs, batch_size=16,
                       optimizer=optimizer, validation_data=(Xvl, Tvl),
                       lr_schedule=gd.schedules.ReduceLROnPlateau(
                           patience=0, factor=0.5, min_delta=0.05)
                       if optimizer is not None else None,
                       early_stopping=gd.EarlyStopping(patience=50, restore_best_weights=False),
                       checkpoint=checkpoint)

        straight = net_for(dtype)
        h_straight = run_validated(straight, 6, optimizer=gd.optim.SGD(lr=0.2, momentum=0.9))
        first = net_for(dtype)
        run_validated(first, 3, checkpoint=path, optimizer=gd.optim.SGD(lr=0.2, momentum=0.9))
        resumed = gd.load(path)
        h_resumed = run_validated(resumed, 3)
        out[f"{dtype}_straight"] = straight.params.copy()
        out[f"{dtype}_resumed"] = resumed.params.copy()
        meta[f"{dtype}_val_loss"] = h_straight.val_loss
        meta[f"{dtype}_val_accuracy"] = h_straight.val_accuracy
        meta[f"{dtype}_lr"] = h_straight.lr
        meta[f"{dtype}_resumed_val_loss"] = h_resumed.val_loss
    # an empty shard on rank 0, dropout and an l2 penalty
    X, T, _, _ = data("float64")
    Xl, Tl = (X[:0], T[:0]) if rank == 0 else (X, T)
    net = net_for("float64")
    fit(net, Xl, Tl, comm=comm, epochs=2, batch_size=16, seed=5, l2=1e-3,
        optimizer=gd.optim.SGD(lr=0.1, momentum=0.9))
    out["empty_shard"] = net.params.copy()
    net = gd.MLP([5, 8, 3], activation="tanh", dtype="float64", seed=3, dropout=0.3)
    Xl, Tl = local(X, SPLIT, N, rank, size), local(T, SPLIT, N, rank, size)
    fit(net, Xl, Tl, comm=comm, epochs=2, batch_size=16, seed=5,
        optimizer=gd.optim.Adam(lr=1e-2))
    out["dropout"] = net.params.copy()
    # one rank alone (a communicator of size 1) is the one-process fit, bit for bit
    alone = comm.Split(color=rank, key=0)
    X, T, _, _ = data("float64")
    a, b = net_for("float64"), net_for("float64")
    h_a = a.fit(X, T, epochs=3, batch_size=16, seed=2, optimizer=gd.optim.Adam(lr=1e-2),
                progress=False)
    h_b = fit(b, X, T, comm=alone, epochs=3, batch_size=16, seed=2,
              optimizer=gd.optim.Adam(lr=1e-2))
    meta["alone_equal"] = bool(np.array_equal(a.params, b.params) and h_a.loss == h_b.loss)
    # parameter groups are refused on every rank before any update
    grouped = gd.optim.Adam(lr=1e-2)
    grouped.set_param_groups([{"layers": [0], "frozen": True}])
    before = b.params.copy()
    try:
        fit(b, X, T, comm=comm, epochs=1, batch_size=16, optimizer=grouped)
        meta["groups_error"] = ""
    except ValueError as err:
        meta["groups_error"] = str(err)
    meta["groups_unchanged"] = bool(np.array_equal(b.params, before))
    alone.Free()
    # every rank rejects bad input together (no rank left waiting)
    try:
        fit(net_for("float64"), np.zeros((3, 4 if rank == 1 else 5)), np.zeros(3, np.int64),
            comm=comm, epochs=1)
    except ValueError as err:
        meta["error"] = str(err)
    np.savez(os.path.join(out_dir, f"rank{rank}.npz"), **out)
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump(meta, f)


if __name__ == "__main__":
    main(sys.argv[1])
