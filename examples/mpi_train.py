"""
Data-parallel training on MPI
=============================

Every rank trains on its shard of the data.  This example needs mpi4py and an MPI
launcher, so the documentation shows it without running it::

    mpirun -n 4 python examples/mpi_train.py            # (as root: --allow-run-as-root;
                                                        #  more ranks than cores: --oversubscribe)

Each rank makes the same data set here and keeps its slice; in real use each rank
would read only its own shard (for example rows ``shard(n, size, rank)`` of a memmap).
Rank 0 prints the history and saves a checkpoint after every epoch; rerunning with
``--resume`` continues from it on every rank.
"""
import argparse
import os

import numpy as np
from mpi4py import MPI

import gdcore as gd
from gdcore.distributed import fit, shard


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64, help="global batch size")
    parser.add_argument("--checkpoint", default="mpi_train.npz")
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()

    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    X, T = gd.datasets.spirals(n_samples=3000, n_classes=3, noise=0.2, seed=0)
    X = X.astype(np.float32)
    n_val = 600
    train, val = shard(len(X) - n_val, size, rank), shard(n_val, size, rank)
    X_train, T_train = X[n_val:][train], T[n_val:][train]
    X_val, T_val = X[:n_val][val], T[:n_val][val]

    if args.resume and os.path.exists(args.checkpoint):
        net = gd.load(args.checkpoint)              # every rank reads the same file
        optimizer = None
    else:
        net = gd.MLP([2, 64, 64, 3], activation="tanh", seed=0)
        optimizer = gd.optim.Adam(lr=1e-2)
    history = fit(net, X_train, T_train, comm=comm, epochs=args.epochs,
                  batch_size=args.batch_size, optimizer=optimizer,
                  validation_data=(X_val, T_val), checkpoint=args.checkpoint,
                  progress=rank == 0)
    if rank == 0:
        print(f"{size} ranks, {len(history)} epochs, epochs trained {net.epochs_trained}")
        for e, loss, vl, va in zip(history.epoch, history.loss, history.val_loss,
                                   history.val_accuracy):
            print(f"epoch {e:3d}  loss {loss:.4f}  val_loss {vl:.4f}  val_accuracy {va:.3f}")


if __name__ == "__main__":
    main()
