"""The table of ``gdcore bench``: native kernels and train steps against the NumPy
reference, and against PyTorch when it happens to be installed (it is not a
dependency).  Times are medians of repeated runs, in microseconds per call.

For measurements to keep or compare across versions use the asv suite in
``benchmarks/``; this table is the quick look a user runs on their own machine.
"""
import time
import timeit
from collections import namedtuple
from typing import Any, Callable, List, Optional, Tuple

import numpy as _np

np = _np   # the case builders below use the usual name

__all__ = ["Row", "run", "format_table", "measure"]

#: One line of the table: medians in microseconds per call (``torch`` is None when
#: PyTorch is not installed or has no counterpart) and ``spread``, the largest
#: relative spread (interquartile range / median) among the row's measurements.
Row = namedtuple("Row", ["label", "native", "reference", "torch", "spread"])

#: A row is repeated until the relative interquartile range of its samples is below
#: this (or its time budget is spent, and the table then marks it as noisy).
TARGET_SPREAD = 0.10


def __dir__():
    """Tab completion and ``dir()`` show the public names only."""
    return list(__all__)


def measure(func: Callable[[], Any], quick: bool = False) -> Tuple[float, float]:
    """Median microseconds per call of ``func`` and the relative spread of the samples.

    Each sample times a loop of calls long enough to be well above the timer's
    resolution (``timeit.Timer.autorange``, one twentieth of it with ``quick``).
    Samples are added, five at a time, until their interquartile range is below
    ``TARGET_SPREAD`` of their median, or until the row's budget is spent: at most
    10 samples and about 0.25 s with ``quick``, 35 samples and 3 s otherwise.

    Returns
    -------
    (median_us, spread) : (float, float)
    """
    func()                                          # warm up: workspaces, state, caches
    t = timeit.Timer(func)
    number, _ = t.autorange()
    if quick:
        number = max(1, number // 20)
    max_samples, budget = (10, 0.25) if quick else (35, 3.0)
    samples: List[float] = []
    started = time.perf_counter()
    while True:
        samples += [x / number for x in t.repeat(repeat=5, number=number)]
        q25, median, q75 = _np.percentile(samples, [25, 50, 75])
        spread = float((q75 - q25) / median) if median > 0 else 0.0
        if (spread < TARGET_SPREAD or len(samples) >= max_samples
                or time.perf_counter() - started > budget):
            return float(median) * 1e6, spread


def _kernel_cases(quick):
    import gdcore as gd

    rng = np.random.default_rng(0)
    f32 = np.float32
    n = 10**5 if quick else 10**6
    cases = []

    def optimizer_case(name, hyper, backend):
        p = rng.standard_normal(n).astype(f32)
        g = rng.standard_normal(n).astype(f32)
        state = backend.optimizer_state(name, p, momentum=hyper.get("momentum", 0.0))
        update = getattr(backend, f"{name}_update")
        return lambda: update(p, g, **state, step=2, **hyper)

    for label, name, hyper in [(f"Adam update, {n:.0e} float32", "adam", {}),
                               (f"SGD momentum update, {n:.0e} float32", "sgd",
                                {"lr": 0.01, "momentum": 0.9})]:
        cases.append((label, optimizer_case(name, hyper, gd.kernels),
                      optimizer_case(name, hyper, gd.reference),
                      _torch_optimizer(name, hyper, n)))

    X = rng.standard_normal((128, 784)).astype(f32)
    W = (rng.standard_normal((784, 256)) * 0.05).astype(f32)
    b = np.zeros(256, f32)
    Y = np.empty((128, 256), f32)
    cases.append(("dense_forward 128x784 @ 784x256 + relu",
                  lambda: gd.kernels.dense_forward(X, W, b, "relu", out=Y),
                  lambda: gd.reference.dense_forward(X, W, b, "relu", out=Y),
                  _torch_dense(X, W, b)))
    Yr = gd.reference.dense_forward(X, W, b, "relu")
    dY = rng.standard_normal(Yr.shape).astype(f32)
    cases.append(("dense_backward 128x784 -> 256 relu",
                  lambda: gd.kernels.dense_backward(X, W, Yr, dY, "relu"),
                  lambda: gd.reference.dense_backward(X, W, Yr, dY, "relu"), None))
    x1, d1 = X[:1].copy(), dY[:1].copy()
    y1 = Yr[:1].copy()
    cases.append(("dense_backward batch 1, 784 -> 256",
                  lambda: gd.kernels.dense_backward(x1, W, y1, d1, "relu"),
                  lambda: gd.reference.dense_backward(x1, W, y1, d1, "relu"), None))
    P = gd.reference.activation("softmax", rng.standard_normal((128, 10)).astype(f32))
    labels = rng.integers(0, 10, 128)
    cases.append(("loss_delta cross_entropy 128x10",
                  lambda: gd.kernels.loss_delta("cross_entropy", P, labels),
                  lambda: gd.reference.loss_delta("cross_entropy", P, labels), None))
    return cases


def _step_cases(quick):
    import gdcore as gd

    rng = np.random.default_rng(1)
    specs = [
        ("train_step 784-256-128-10 relu, Adam, batch 32", [784, 256, 128, 10], "relu",
         "softmax", "cross_entropy", lambda: gd.optim.Adam(lr=1e-3), 32),
        ("train_step 784-15-10 sigmoid, SGD, batch 32", [784, 15, 10], "sigmoid", "softmax",
         "cross_entropy", lambda: gd.optim.SGD(lr=0.1), 32),
        ("train_step 13-16-1 sigmoid, SGD, batch 1", [13, 16, 1], "sigmoid", "identity",
         "squared_error", lambda: gd.optim.SGD(lr=0.01), 1),
    ]
    if not quick:
        specs.insert(1, ("train_step 784-256-128-10 relu, SGD, batch 512", [784, 256, 128, 10],
                         "relu", "softmax", "cross_entropy", lambda: gd.optim.SGD(lr=0.01), 512))
    cases = []
    for label, sizes, act, out, loss, make_opt, batch in specs:
        X = rng.standard_normal((batch, sizes[0])).astype(np.float32)
        T = (rng.integers(0, sizes[-1], batch) if loss == "cross_entropy"
             else rng.standard_normal((batch, sizes[-1])).astype(np.float32))
        steps = []
        for backend in ("native", "reference"):
            net = gd.MLP(sizes, activation=act, output=out, loss=loss, seed=0, backend=backend)
            opt = make_opt()
            steps.append(lambda net=net, opt=opt, X=X, T=T: net.train_step(X, T, opt))
        cases.append((label, steps[0], steps[1], _torch_step(sizes, act, out, loss, batch, X, T)))
    return cases


# ---- PyTorch, when installed --------------------------------------------------------

def _torch():
    try:
        import torch
    except ImportError:
        return None
    import gdcore as gd
    torch.set_num_threads(gd.get_num_threads())
    return torch


def _torch_optimizer(name, hyper, n):
    torch = _torch()
    if torch is None:
        return None
    p = torch.nn.Parameter(torch.randn(n))
    p.grad = torch.randn(n)
    make = ((lambda **kw: torch.optim.Adam([p], **kw)) if name == "adam" else
            (lambda **kw: torch.optim.SGD([p], lr=hyper["lr"], momentum=hyper["momentum"],
                                          **kw)))
    try:
        opt = make(fused=True)         # torch's fastest CPU path, where this torch has it
        opt.step()
    except (RuntimeError, TypeError, ValueError):
        opt = make()
    return opt.step


def _torch_dense(X, W, b):
    torch = _torch()
    if torch is None:
        return None
    x, w, bias = torch.from_numpy(X), torch.from_numpy(W), torch.from_numpy(b)

    def run():
        with torch.no_grad():
            torch.relu_(torch.addmm(bias, x, w))
    return run


def _torch_step(sizes, act, out, loss, batch, X, T):
    torch = _torch()
    if torch is None:
        return None
    nn = torch.nn
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU() if act == "relu" else nn.Sigmoid())
    model = nn.Sequential(*layers)
    criterion = nn.CrossEntropyLoss() if loss == "cross_entropy" else nn.MSELoss()
    if batch == 32 and sizes[1] == 256:
        try:
            opt = torch.optim.Adam(model.parameters(), fused=True)
        except (RuntimeError, TypeError, ValueError):       # no fused CPU Adam here
            opt = torch.optim.Adam(model.parameters())
    else:
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.from_numpy(X)
    t = torch.from_numpy(T)

    def run():
        opt.zero_grad(set_to_none=True)
        criterion(model(x), t).backward()
        opt.step()
    return run


def run(quick: bool = False, threads: Optional[int] = None, progress: Any = None) -> List[Row]:
    """Measure every case (see ``measure``); returns a list of ``Row``.

    Parameters
    ----------
    quick : bool
        Smaller arrays, shorter loops, smaller budgets.
    threads : int, optional
        Threads for gdcore and the BLAS during the run (restored afterwards).
    progress : file-like, optional
        Where to write one line per row as it is measured (``gdcore bench`` uses
        stderr, so the table on stdout stays clean).
    """
    import gdcore as gd
    from threadpoolctl import threadpool_limits

    before = gd.get_num_threads()
    if threads is not None:
        gd.set_num_threads(threads)
    limit = threadpool_limits(threads, user_api="blas") if threads is not None else None
    try:
        cases = _kernel_cases(quick) + _step_cases(quick)
        rows = []
        for i, (label, native, reference, torch_case) in enumerate(cases, 1):
            if progress is not None:
                print(f"[{i}/{len(cases)}] {label} ...", file=progress, flush=True)
            measured = [measure(f, quick) for f in (native, reference)]
            if torch_case is not None:
                measured.append(measure(torch_case, quick))
            rows.append(Row(label, measured[0][0], measured[1][0],
                            measured[2][0] if torch_case is not None else None,
                            max(spread for _, spread in measured)))
        return rows
    finally:
        if limit is not None:
            limit.restore_original_limits()
        if threads is not None:
            gd.set_num_threads(before)


def format_table(rows: List[Row], threads: Optional[int] = None) -> str:
    """The table as text: one line per row, speedup = reference / native; a PyTorch
    column only when some row has a PyTorch time; rows whose spread stayed above
    ``TARGET_SPREAD`` end with 'noisy (spread N%)'.  ``threads``: the thread count
    the rows were measured with (default: gdcore's current setting)."""
    import gdcore as gd

    has_torch = any(r.torch is not None for r in rows)
    width = max(len(r.label) for r in rows)
    head = f"{'case':<{width}}  {'native us':>10}  {'reference us':>12}  {'speedup':>8}"
    if has_torch:
        head += f"  {'PyTorch us':>10}"
    lines = [f"gdcore {gd.__version__}, {gd.kernels.ISA} build, {threads or gd.get_num_threads()} "
             f"thread(s); medians, repeated until the spread (IQR/median) is below "
             f"{TARGET_SPREAD:.0%}", head, "-" * len(head)]
    noisy = 0
    for r in rows:
        line = (f"{r.label:<{width}}  {r.native:>10.1f}  {r.reference:>12.1f}  "
                f"{r.reference / r.native:>7.1f}x")
        if has_torch:
            line += f"  {r.torch:>10.1f}" if r.torch is not None else f"  {'-':>10}"
        if r.spread >= TARGET_SPREAD:
            line += f"  noisy (spread {r.spread:.0%})"
            noisy += 1
        lines.append(line)
    if noisy:
        lines.append(f"{noisy} row(s) stayed noisy: the machine may be busy; "
                     f"rerun on a quiet machine before trusting them")
    return "\n".join(lines)
