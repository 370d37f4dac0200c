"""Data-parallel training on MPI: one Allreduce of the flat gradient buffer per step.

::

    # mpirun -n 4 python examples/mpi_train.py
    from mpi4py import MPI
    import gdcore as gd
    comm = MPI.COMM_WORLD
    X_local, T_local = ...                  # this rank's shard of the training set
    net = gd.MLP([784, 256, 128, 10], seed=0)
    history = gd.distributed.fit(net, X_local, T_local, comm=comm, epochs=5,
                                 batch_size=256, optimizer=gd.optim.Adam(1e-3))

How a step works.  The training set is the concatenation of the ranks' shards in rank
order (rank 0's samples first), N samples in all.  Every rank draws the same global
permutation of the N indices from the network's generator (the generator state is
broadcast from rank 0 when training starts, so all ranks agree), and a global
mini-batch of B = ``batch_size`` indices is split by ownership: each rank gathers the
rows it holds (b_r of them) and computes the gradient g_r of their mean loss natively.
One ``Allreduce(SUM)`` of the buffer ``[(b_r / B) g_r, (b_r / B) loss_r]`` gives every
rank ``sum_r (b_r / B) g_r``, the gradient of the global batch: shards of different
sizes, and batches that miss a rank entirely (b_r = 0), are weighted right.  Every
rank then makes the same optimizer step on the same numbers, so the parameters stay
identical bit for bit (MPI implementations give every rank the same Allreduce
result, as the MPI standard advises; the tests assert it after every step).  With one
rank the weight is 1 and the run equals the one-process ``fit`` bit for bit.  After
a step ``net.grads`` holds this rank's own, unreduced gradient.

Compared with one process on the same global batches (``net.fit`` on the concatenated
data with the same seed) the parameters differ only by the rounding of the split
reduction: about 1e-13 relative in float64 after 50 steps.  For a fixed number of ranks
and the same shards a seeded run is bitwise reproducible.  Dropout masks and input
noise are drawn per rank from the step's seed mixed with the rank, so with them the
run is reproducible for a fixed number of ranks but not equal to the one-process run.

Validation data are sharded like the training data (each rank passes its part); the
loss and accuracy are reduced over all ranks, so early stopping, ``ReduceLROnPlateau``
and callbacks see the same numbers everywhere and take the same decisions (a callback
that asks to stop on any rank stops all).  ``checkpoint=path`` makes rank 0 save the
network after every epoch (atomically, see ``gdcore.checkpoint``) while the other ranks
wait; to resume, every rank loads the same file with ``gd.load`` and calls ``fit``
again.

The buffer that travels is the network's dtype: the loss of a float32 network is
reduced in float32 (about 7 significant digits in the History).  mpi4py is imported
only by the caller: ``comm`` may be any mpi4py communicator (``MPI.COMM_WORLD`` or a
split of it).
"""
import math
import os
import time
from typing import Any, Callable, Iterable, Optional, Tuple, Union, cast

import numpy as np
from numpy.typing import ArrayLike

from . import _openmp
from . import _validation as v
from . import optim as _optim
from . import schedules as _schedules
from .network import MLP
from .training import (EarlyStopping, History, check_fit_options, _progress_bar, _resolve_optimizer,
                       all_finite)

__all__ = ["fit", "shard"]


def __dir__():
    """Tab completion and ``dir()`` show the public names only."""
    return list(__all__)


# Mixed into each step seed so ranks draw different dropout masks and input noise.
_RANK_SEED_STRIDE = 0x9E3779B97F4A7C15


def shard(n_samples: int, size: int, rank: int) -> slice:
    """The slice of ``range(n_samples)`` that rank ``rank`` of ``size`` holds when the
    samples are split as evenly as possible in rank order (the first
    ``n_samples % size`` ranks hold one more), as ``numpy.array_split`` does."""
    n_samples = v.check_int(n_samples, "n_samples", low=0)
    size = v.check_int(size, "size", low=1)
    rank = v.check_int(rank, "rank", low=0)
    if rank >= size:
        raise ValueError(f"rank must be < size={size}, got {rank}")
    base, extra = divmod(n_samples, size)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (rank < extra))


def _check_comm(comm):
    needed = ("Allreduce", "allgather", "Bcast", "bcast", "Barrier", "Get_rank", "Get_size")
    if comm is None or not all(hasattr(comm, name) for name in needed):
        raise TypeError(f"comm must be an mpi4py communicator (e.g. MPI.COMM_WORLD), got "
                        f"{type(comm).__name__}")
    return comm


def _check_shard(net: Any, X: Any, T: Any, name_X: str, name_T: str
                 ) -> Tuple[np.ndarray, np.ndarray]:
    """Checked local arrays; a shard may hold no samples."""
    X = net._check_X(X, name_X)
    n_T = len(T) if hasattr(T, "__len__") else None
    if n_T is not None and n_T != X.shape[0]:
        raise ValueError(f"{name_X} has {X.shape[0]} samples but {name_T} has {n_T}")
    T = net._check_T(T, X.shape[0], name_T)
    if not all_finite(X):
        raise ValueError(f"{name_X} contains NaN or infinity")
    if T.dtype.kind == "f" and not all_finite(T):
        raise ValueError(f"{name_T} contains NaN or infinity")
    return X, T


def _agree(comm, error):
    """Raise on every rank when any rank's validation failed, so that no rank is left
    waiting in a collective call.  ``error`` is this rank's exception or None."""
    errors = comm.allgather(None if error is None else (type(error).__name__, str(error)))
    failed = [(r, e) for r, e in enumerate(errors) if e is not None]
    if not failed:
        return
    if error is not None:
        raise error
    rank, (kind, message) = failed[0]
    cls = TypeError if kind == "TypeError" else ValueError
    raise cls(f"rank {rank} rejected its arguments: {message}")


def fit(net: "MLP", X: ArrayLike, T: ArrayLike, comm: Any, epochs: int = 10,
        batch_size: Optional[int] = 32, optimizer: Optional[_optim.Optimizer] = None,
        shuffle: bool = True, seed: Optional[int] = None,
        validation_data: Optional[Tuple[ArrayLike, ArrayLike]] = None,
        early_stopping: Union[EarlyStopping, bool, None] = None, l1: float = 0.0,
        l2: float = 0.0, input_noise: float = 0.0,
        lr_schedule: Optional[_schedules.Schedule] = None,
        callbacks: Optional[Iterable[Any]] = (),
        checkpoint: Union[str, "os.PathLike[str]", None] = None, progress: bool = False,
        n_threads: Optional[int] = None,
        step_callback: Optional[Callable[[int, float], Any]] = None) -> History:
    """Train ``net`` data-parallel over the ranks of ``comm``; call it on every rank.

    Parameters
    ----------
    net : gdcore.MLP
        The same architecture on every rank.  Rank 0's parameters and training
        generator are broadcast to the others when training starts; the optimizer
        state must already agree (a fresh optimizer, or one loaded from the same
        checkpoint).
    X, T : ndarray or np.memmap
        This rank's shard (any number of samples, including none on some ranks but
        not all); the global training set is the shards in rank order.
    comm : mpi4py communicator
    optimizer : gdcore.optim optimizer, optional
        As in ``MLP.fit``: default ``net.optimizer``, or a new ``Adam()`` when the
        network has none.
    epochs, shuffle, seed, early_stopping, l1, l2, input_noise, lr_schedule, callbacks,
    progress, n_threads
        As in ``MLP.fit``; ``seed`` must be the same on every rank.
    batch_size : int >= 1 or None
        The global mini-batch size (split across ranks by ownership); None is
        full-batch gradient descent.
    validation_data : (X_val, T_val), optional
        This rank's shard of the validation set; metrics are reduced over all ranks.
    checkpoint : str or path, optional
        Rank 0 saves the network here after every epoch (atomically); all ranks wait
        for the file.
    step_callback : callable, optional
        ``step_callback(step, loss)`` after every step with the global batch loss.

    Returns
    -------
    History
        The same on every rank.  ``validation_split`` is not offered: hold out a
        validation shard per rank instead.
    """
    comm = _check_comm(comm)
    rank = comm.Get_rank()
    error = None
    try:
        (epochs, batch_size, l1, l2, input_noise, early_stopping,
         callbacks) = check_fit_options(epochs, batch_size, l1, l2, input_noise,
                                        early_stopping, lr_schedule, callbacks)
        for cb in callbacks:
            if hasattr(cb, "on_train_begin"):
                raise ValueError(f"distributed fit calls callbacks with the History only; "
                                 f"{type(cb).__name__} needs MLP.fit")
        schedule = lr_schedule if lr_schedule is not None else net.lr_schedule
        if schedule is not None and schedule.unit != "epoch":
            raise ValueError("distributed fit applies schedules per epoch; this one has "
                             "unit='step'")
        if early_stopping is not None and (early_stopping.monitor not in ("val_loss", "loss")
                                           or early_stopping.mode == "max"):
            raise ValueError(f"distributed fit stops early on 'val_loss' or 'loss' "
                             f"(decreasing) only, got {early_stopping!r}")
        if step_callback is not None and not callable(step_callback):
            raise TypeError("step_callback must be callable")
        if seed is not None:
            seed = v.check_int(seed, "seed", low=0)
        X, T = _check_shard(net, X, T, "X", "T")
        Xv = Tv = None
        if validation_data is not None:
            try:
                Xv, Tv = validation_data
            except (TypeError, ValueError):
                raise TypeError("validation_data must be a pair (X_val, T_val)") from None
            Xv, Tv = _check_shard(net, Xv, Tv, "validation_data[0]", "validation_data[1]")
        if optimizer is not None:
            net._check_optimizer(optimizer)
    except (TypeError, ValueError) as err:
        error = err
    _agree(comm, error)
    # what the checks above made of the arguments (a type checker loses it past the try)
    X, T = cast(np.ndarray, X), cast(np.ndarray, T)
    early_stopping = cast(Optional[EarlyStopping], early_stopping)
    callbacks = cast(list, callbacks)

    counts = np.array(comm.allgather(X.shape[0]), dtype=np.int64)
    layout = comm.allgather((net.layer_sizes, net.dtype.name, net.loss_name, net.backend,
                             batch_size, shuffle, seed, epochs))
    error = None
    if any(item != layout[0] for item in layout):
        error = ValueError(f"the ranks disagree on (layer_sizes, dtype, loss, backend, "
                           f"batch_size, shuffle, seed, epochs): {layout}")
    elif counts.sum() == 0:
        error = ValueError("X has no samples on any rank")
    _agree(comm, error)

    optimizer = _resolve_optimizer(net, optimizer)
    # the same on every rank (the optimizers agree, as the step counts below): the
    # update here is Optimizer.step on the flat buffer, which has no layer layout
    _agree(comm, ValueError(
        "distributed fit updates the flat parameter buffer with Optimizer.step, which "
        "knows no layers: parameter groups need MLP.fit (gradient clipping works here)")
        if optimizer.param_groups else None)
    optimizer.prepare(net.params)
    steps = comm.allgather(optimizer.step_count)
    _agree(comm, None if len(set(steps)) == 1 else ValueError(
        f"the ranks' optimizers are at different steps {steps}; start from a fresh "
        f"optimizer or load the same checkpoint on every rank"))
    comm.Bcast(net.params, root=0)
    for buf in optimizer.state.values():
        comm.Bcast(buf, root=0)
    net.rng.bit_generator.state = comm.bcast(net.rng.bit_generator.state, root=0)
    if seed is not None:
        net.reseed(seed)
    if lr_schedule is not None:
        net.lr_schedule = lr_schedule
    schedule = net.lr_schedule
    if schedule is not None:
        schedule.start(optimizer.lr)
    nt = _openmp.resolve(n_threads)

    N = int(counts.sum())
    low = int(counts[:rank].sum())
    high = low + X.shape[0]
    B = N if batch_size is None else min(batch_size, N)
    n_steps = math.ceil(N / B)
    stochastic = bool(input_noise) or net.stochastic
    P = net.n_params
    reduced = np.empty(P + 1, dtype=net.dtype)
    X_buf = np.empty((min(B, X.shape[0]),) + X.shape[1:], dtype=X.dtype)
    T_buf = np.empty((min(B, X.shape[0]),) + T.shape[1:], dtype=T.dtype)
    history = History()
    best, best_params, wait = math.inf, None, 0
    bar = _progress_bar(progress if rank == 0 else False, epochs, net.epochs_trained)
    from mpi4py import MPI
    try:
        for _ in range(epochs):
            epoch = net.epochs_trained
            started = time.perf_counter()
            if schedule is not None:
                optimizer.lr = schedule.lr_at(epoch)
            lr = optimizer.lr
            order = (net.rng.permutation(N).astype(np.int64)
                     if shuffle and batch_size is not None else np.arange(N, dtype=np.int64))
            seeds = (net.rng.bit_generator.random_raw(n_steps).astype(np.uint64)
                     if stochastic else np.zeros(n_steps, dtype=np.uint64))
            total = 0.0
            for k in range(n_steps):
                rows = order[k * B:(k + 1) * B]
                mine = rows[(rows >= low) & (rows < high)] - low
                b = mine.shape[0]
                if b:
                    Xb = np.take(X, mine, axis=0, out=X_buf[:b])
                    Tb = np.take(T, mine, axis=0, out=T_buf[:b])
                    step_seed = (int(seeds[k]) + rank * _RANK_SEED_STRIDE) % (1 << 64)
                    loss = net._step(Xb, Tb, None, True, l1, l2, input_noise, step_seed,
                                     n_threads)
                    weight = b / rows.shape[0]
                    np.multiply(net.grads, net.dtype.type(weight), out=reduced[:P])
                    reduced[P] = loss * weight
                else:
                    reduced[...] = 0
                comm.Allreduce(MPI.IN_PLACE, reduced, op=MPI.SUM)
                optimizer.step(net.params, reduced[:P], n_threads=nt)
                batch_loss = float(reduced[P])
                total += batch_loss * rows.shape[0]
                if step_callback is not None:
                    step_callback(optimizer.step_count, batch_loss)
            net.epochs_trained += 1
            metrics = {"loss": total / N}
            if Xv is not None:
                metrics.update(_reduced_evaluate(net, Xv, Tv, comm, n_threads))
            history._append(epoch=epoch, loss=metrics["loss"],
                            val_loss=metrics.get("val_loss"),
                            val_accuracy=metrics.get("val_accuracy"), lr=lr,
                            seconds=time.perf_counter() - started)
            net.history._append(**{key: history[key][-1] for key in History.KEYS})
            if schedule is not None:
                schedule.epoch_end(epoch, metrics)
            if bar is not None:
                bar.set_postfix({key: f"{val:.4g}" for key, val in metrics.items()})
                bar.update(1)
            stop = False
            if early_stopping is not None:
                key = early_stopping.monitor if early_stopping.monitor in metrics else "loss"
                if metrics[key] < best - early_stopping.min_delta:
                    best, wait = metrics[key], 0
                    history.best_epoch = epoch
                    if early_stopping.restore_best_weights:
                        best_params = net.params.copy()
                else:
                    wait += 1
                    stop = wait >= early_stopping.patience
            for cb in callbacks:
                hook = cb.on_epoch_end if hasattr(cb, "on_epoch_end") else cb
                if hook(history):
                    stop = True
            if not math.isfinite(metrics["loss"]):
                stop = True
            stop = bool(comm.allreduce(stop, op=MPI.LOR))
            if stop and early_stopping is not None and best_params is not None:
                net.params[...] = best_params
            if checkpoint is not None:
                if rank == 0:
                    net.save(checkpoint)
                comm.Barrier()
            if stop:
                history.stopped_early = True
                break
    finally:
        if bar is not None:
            bar.close()
    if early_stopping is not None and best_params is not None:
        net.params[...] = best_params
    return history


def _reduced_evaluate(net, Xv, Tv, comm, n_threads):
    """Validation loss (and accuracy) over all ranks' validation shards."""
    from mpi4py import MPI
    sums = np.zeros(3, dtype=np.float64)
    n = Xv.shape[0]
    if n:
        scores = net.evaluate(Xv, Tv, n_threads=n_threads)
        sums[0] = scores["loss"] * n
        sums[1] = scores.get("accuracy", 0.0) * n
        sums[2] = n
    comm.Allreduce(MPI.IN_PLACE, sums, op=MPI.SUM)
    if sums[2] == 0:
        return {}
    result = {"val_loss": float(sums[0] / sums[2])}
    if net.is_classifier:
        result["val_accuracy"] = float(sums[1] / sums[2])
    return result
