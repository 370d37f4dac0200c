"""Fuzzing worker: runs hypothesis-generated calls of gdcore's public entry points in
this process and prints one JSON line of counts.  Run by tests/test_reliability_fuzz.py
in a subprocess, so that a crash of the interpreter fails the test instead of hiding.

    python tests/fuzz_worker.py GROUP N_EXAMPLES SEED

Every call either returns or raises TypeError/ValueError (RuntimeError for misuse);
anything else is counted as ``unexpected``.  A kernel call that succeeds is compared
with its reference twin (``wrong``); a stateful call that raises must leave its state
as it was (``state_changed``).
"""
import json
import sys
import traceback
import warnings

import numpy as np
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

import gdcore as gd
from gdcore import kernels as K
from gdcore import reference as R

ALLOWED = (TypeError, ValueError)
COUNTS = {"cases": 0, "unexpected": 0, "wrong": 0, "state_changed": 0, "accepted": 0}
EXAMPLES = []

DTYPES = ["float32", "float64", "float16", ">f4", ">f8", "complex64", "complex128",
          "int32", "int64", "bool", "object", "uint8"]
SPECIAL = [0.0, -0.0, 1.0, -1.0, np.nan, np.inf, -np.inf, 1e30, -1e30, 1e-30, 3.0e38,
           1e300]


GOOD_DTYPES = ["float32", "float64"]
LAYOUTS = ["c"] * 6 + ["strided", "fortran", "readonly", "list"]
SIZES = [0, 1, 2, 3, 5, 17, 40]


def make_array(spec, shape, dtype):
    """An array of ``shape``/``dtype`` from the integer tuple ``spec``: usually valid,
    sometimes of another dtype, shape, layout, or with special values."""
    # one integer carries every choice (one hypothesis draw per array)
    mutate = (0, 0, 0, 0, 1, 2)[spec % 6]
    poison = (0, 0, 0) + tuple(range(1, 12))
    poison = poison[(spec // 6) % len(poison)]
    layout = (spec // 84) % 21
    rng_seed = spec // 1764
    rng = np.random.default_rng(rng_seed)
    if mutate == 1:
        dtype = DTYPES[rng_seed % len(DTYPES)]
    elif mutate == 2:
        shape = tuple(SIZES[(rng_seed >> (2 * i)) % len(SIZES)]
                      for i in range((rng_seed >> 8) % 4))
    n = int(np.prod(shape)) if shape else 1
    base = rng.standard_normal(n)
    if poison and n:
        base[rng.integers(0, n, 1 + n // 8)] = SPECIAL[poison % len(SPECIAL)]
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = (base.astype(object) if dtype == "object" else base.astype(np.dtype(dtype)))
    a = a.reshape(shape)
    layout = LAYOUTS[layout % len(LAYOUTS)]
    if layout == "strided" and a.ndim >= 1:
        a = np.repeat(a, 2, axis=-1)[..., ::2]
    elif layout == "fortran":
        a = np.asfortranarray(a)
    elif layout == "readonly":
        a = a.copy()
        a.flags.writeable = False
    elif layout == "list":
        return a.tolist()
    return a


SPEC = st.integers(0, 2**40)


@st.composite
def arrays(draw, shape=None, dtypes=DTYPES, ndim=None):
    """A free-form array (any dtype and layout) of ``ndim`` dimensions."""
    if shape is None:
        nd = 2 if ndim is None else ndim
        shape = tuple(draw(st.sampled_from(SIZES)) for _ in range(nd))
    return make_array(draw(SPEC), shape, draw(st.sampled_from(dtypes)))


REPLICA = {"rng": np.random.default_rng(0)}


def like(data, shape, dtype):
    """An array that is mostly valid for ``shape`` and ``dtype``; its contents, special
    values, layout and mutation come from the replica's generator (see Replay)."""
    return make_array(int(REPLICA["rng"].integers(0, 2**40)), shape, dtype)


class Replay:
    """Hypothesis draws the structure of a case (entry point, sizes, dtypes, names,
    hyperparameters) once; the case then runs REPLICAS times with those choices and
    different array contents, which makes thousands of calls cheap (a hypothesis draw
    costs about as much as a call)."""

    def __init__(self, data):
        self.data, self.values, self.i = data, [], None

    def draw(self, strategy):
        if self.i is None:
            value = self.data.draw(strategy)
            self.values.append(value)
            return value
        self.i += 1
        return self.values[self.i - 1]

    def replay(self):
        self.i = 0


def threads():
    return st.one_of(st.none(), st.sampled_from([1, 2, 0, -1, True, 2**16, 2**31, 2**70,
                                                 1.5, "2"]))


def hyper():
    return st.one_of(st.sampled_from([0.0, 1e-3, 0.5, 0.99, 1.0, 10.0, -1.0, np.nan, np.inf,
                                      10**400, 1 + 1j, "x", None, True, 2**63]),
                     st.floats(0, 1))


def record(kind, detail):
    COUNTS[kind] += 1
    if len(EXAMPLES) < 10:
        EXAMPLES.append(f"{kind}: {detail}")


def call(fn, *args, **kwargs):
    """(ok, result) with the allowed exceptions caught; others counted."""
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return True, fn(*args, **kwargs)
    except ALLOWED:
        return False, None
    except RuntimeError as err:
        if "another thread" in str(err):
            return False, None
        record("unexpected", traceback.format_exc(limit=3))
        return False, None
    except Exception:
        record("unexpected", traceback.format_exc(limit=3))
        return False, None


def same(a, b, tol):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return False
    if not (np.array_equal(np.isnan(a), np.isnan(b)) and
            np.array_equal(np.isposinf(a), np.isposinf(b)) and
            np.array_equal(np.isneginf(a), np.isneginf(b))):
        return False
    fin = np.isfinite(a) & np.isfinite(b)
    scale = max(1.0, float(np.max(np.abs(b[fin]), initial=0.0)))
    return bool(np.all(np.abs(a[fin] - b[fin]) <= tol * scale))


def compare(name, native_call, reference_call, tol=1e-3):
    ok_n, out_n = call(native_call)
    ok_r, out_r = call(reference_call)
    COUNTS["cases"] += 1
    if ok_n != ok_r:
        record("wrong", f"{name}: native ok={ok_n}, reference ok={ok_r}")
        return
    if ok_n:
        COUNTS["accepted"] += 1
        outs_n = out_n if isinstance(out_n, tuple) else (out_n,)
        outs_r = out_r if isinstance(out_r, tuple) else (out_r,)
        for a, b in zip(outs_n, outs_r):
            if (a is None) != (b is None) or (a is not None and not same(a, b, tol)):
                record("wrong", f"{name}: results differ")
                return


# ---- groups ---------------------------------------------------------------------------

ACTS = ["identity", "sigmoid", "tanh", "relu", "softmax", "bogus", None]
LOSSES = ["squared_error", "mse", "cross_entropy", "binary_cross_entropy", "x"]


def kernels_case(data):
    which = data.draw(st.sampled_from(["act", "act_back", "dense_f", "dense_b", "loss",
                                       "loss_delta"]))
    nt = data.draw(threads())
    name = data.draw(st.sampled_from(ACTS))
    n, k, m = (data.draw(st.sampled_from(SIZES)) for _ in range(3))
    dt = data.draw(st.sampled_from(GOOD_DTYPES))
    if which == "act":
        U = like(data, (n, k), dt)
        compare("activation", lambda: K.activation(name, U, n_threads=nt),
                lambda: R.activation(name, U, n_threads=nt))
    elif which == "act_back":
        Y, dY = like(data, (n, k), dt), like(data, (n, k), dt)
        compare("activation_backward", lambda: K.activation_backward(name, Y, dY, n_threads=nt),
                lambda: R.activation_backward(name, Y, dY, n_threads=nt))
    elif which == "dense_f":
        X, W = like(data, (n, k), dt), like(data, (k, m), dt)
        b = data.draw(st.one_of(st.none(), st.just(like(data, (m,), dt))))
        compare("dense_forward", lambda: K.dense_forward(X, W, b, name, n_threads=nt),
                lambda: R.dense_forward(X, W, b, name, n_threads=nt))
    elif which == "dense_b":
        X, W = like(data, (n, k), dt), like(data, (k, m), dt)
        Y, dY = like(data, (n, m), dt), like(data, (n, m), dt)
        compare("dense_backward", lambda: K.dense_backward(X, W, Y, dY, name, n_threads=nt),
                lambda: R.dense_backward(X, W, Y, dY, name, n_threads=nt))
    else:
        lname = data.draw(st.sampled_from(LOSSES))
        Y = like(data, (n, k), dt)
        if data.draw(st.booleans()):
            T = like(data, (n, k), dt)
        else:
            T = np.random.default_rng(n).integers(-1 if n % 3 == 0 else 0, max(k, 1) + (n == 5), n)
            T = T.astype(data.draw(st.sampled_from(["int64", "int8", "uint64", "int32"])))
        fn = "loss" if which == "loss" else "loss_delta"
        compare(fn, lambda: getattr(K, fn)(lname, Y, T, n_threads=nt),
                lambda: getattr(R, fn)(lname, Y, T, n_threads=nt))


OPTS = [(gd.optim.SGD, ["lr", "momentum", "dampening", "weight_decay"]),
        (gd.optim.Adagrad, ["lr", "lr_decay", "weight_decay", "eps"]),
        (gd.optim.Adadelta, ["lr", "rho", "eps", "weight_decay"]),
        (gd.optim.RMSprop, ["lr", "alpha", "eps", "momentum", "weight_decay"]),
        (gd.optim.Adam, ["lr", "eps", "weight_decay"]),
        (gd.optim.AdamW, ["lr", "eps", "weight_decay"])]


def optim_case(data):
    cls, names = data.draw(st.sampled_from(OPTS))
    kwargs = {n: data.draw(hyper()) for n in data.draw(st.lists(st.sampled_from(names),
                                                                max_size=2, unique=True))}
    COUNTS["cases"] += 1
    ok, opt = call(cls, **kwargs)
    if not ok:
        return
    size = data.draw(st.sampled_from(SIZES))
    dt = data.draw(st.sampled_from(GOOD_DTYPES))
    p = like(data, (size,), dt)
    g = like(data, (size,), dt) if data.draw(st.integers(0, 9)) else p
    nt = data.draw(threads())
    for _ in range(data.draw(st.integers(1, 3))):
        before_p = np.array(p, copy=True) if isinstance(p, np.ndarray) else None
        before_state = {k: b.copy() for k, b in opt.state.items()}
        steps = opt.step_count
        ok, _ = call(opt.step, p, g, n_threads=nt)
        COUNTS["cases"] += 1
        if ok:
            COUNTS["accepted"] += 1
            continue
        changed = opt.step_count != steps or set(opt.state) != set(before_state)
        if before_p is not None:
            if before_p.dtype.kind in "fc":
                changed |= not np.array_equal(before_p, p, equal_nan=True)
            else:
                changed |= not all(x is y or x == y for x, y in
                                   zip(before_p.reshape(-1).tolist(),
                                       np.asarray(p).reshape(-1).tolist()))
        for k, b in before_state.items():
            if not np.array_equal(b, opt.state[k], equal_nan=True):
                changed = True
        if changed:
            record("state_changed", f"{cls.__name__} step {kwargs} params "
                   f"{getattr(p, 'dtype', type(p))} {np.shape(p)} grads "
                   f"{getattr(g, 'dtype', type(g))} {np.shape(g)} n_threads={nt!r}")
        break


def network_case(data):
    dtype = data.draw(st.sampled_from(["float32", "float64"]))
    out = data.draw(st.sampled_from([("softmax", "cross_entropy"), ("identity", "mse"),
                                     ("sigmoid", "binary_cross_entropy")]))
    backend = data.draw(st.sampled_from(["native", "reference"]))
    net = gd.MLP([3, 4, 2], output=out[0], loss=out[1], dtype=dtype, seed=0,
                 backend=backend, dropout=data.draw(st.sampled_from([None, 0.3])))
    opt = gd.optim.Adam()
    X0 = np.random.default_rng(0).standard_normal((4, 3)).astype(dtype)
    T0 = np.array([0, 1, 1, 0]) if out[1] == "cross_entropy" else np.full((4, 2), 0.5, dtype)
    net.train_step(X0, T0, opt)
    rows = data.draw(st.sampled_from(SIZES))
    X = like(data, (rows, 3), dtype)
    if out[1] == "cross_entropy" and data.draw(st.booleans()):
        T = np.random.default_rng(rows).integers(0, 2 + (rows == 5), rows).astype(
            data.draw(st.sampled_from(["int64", "int32", "uint8", "int8"])))
    else:
        T = like(data, (rows, 2), dtype)
    what = data.draw(st.sampled_from(["train_step", "partial_fit", "fit", "predict",
                                      "evaluate", "gradient"]))
    state = (net.params.copy(), {k: b.copy() for k, b in opt.state.items()},
             opt.step_count, net.epochs_trained, len(net.history),
             net._rng.bit_generator.state)
    kwargs = {}
    if data.draw(st.booleans()):
        kwargs["n_threads"] = data.draw(threads())
    if what in ("train_step", "partial_fit") and data.draw(st.booleans()):
        kwargs[data.draw(st.sampled_from(["l1", "l2", "input_noise"]))] = data.draw(hyper())
    if what == "train_step":
        ok, _ = call(net.train_step, X, T, opt, **kwargs)
    elif what == "partial_fit":
        ok, _ = call(net.partial_fit, X, T, optimizer=opt, **kwargs)
    elif what == "fit":
        kwargs.update(epochs=data.draw(st.sampled_from([0, 1, 2, -1, 2**70])),
                      batch_size=data.draw(st.sampled_from([None, 1, 3, 0, 2**70])),
                      optimizer=opt, progress=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ok, _ = call(net.fit, X, T, **kwargs)
    elif what == "predict":
        ok, _ = call(net.predict, X, **kwargs)
    elif what == "evaluate":
        ok, _ = call(net.evaluate, X, T, **kwargs)
    else:
        ok, _ = call(net.gradient, X, T, **kwargs)
    COUNTS["cases"] += 1
    COUNTS["accepted"] += ok
    if not ok and what in ("train_step", "partial_fit", "fit"):
        now = (net.params, opt.state, opt.step_count, net.epochs_trained, len(net.history),
               net._rng.bit_generator.state)
        changed = (not np.array_equal(state[0], now[0]) or state[2:] != now[2:]
                   or any(not np.array_equal(b, now[1][k]) for k, b in state[1].items()))
        if changed:
            record("state_changed", f"{what} {kwargs}")


def toolkit_case(data):
    what = data.draw(st.sampled_from(["minimize", "numgrad", "linreg", "set_threads"]))
    x = data.draw(st.one_of(st.just(like(data, (data.draw(st.sampled_from(SIZES)),), "float64")),
                            st.sampled_from([5.0, np.nan, 1e308, 1 + 1j, "a", None])))
    COUNTS["cases"] += 1
    if what == "minimize":
        ok, r = call(gd.minimize, lambda v: float(np.sum(np.square(v))), x,
                     lr=data.draw(hyper()), max_iter=data.draw(st.sampled_from([0, 5, 50])),
                     tol=data.draw(hyper()))
        if ok and r.converged and not np.all(np.isfinite(np.asarray(r.x, dtype=float))):
            record("wrong", "minimize converged at a non-finite point")
    elif what == "numgrad":
        ok, _ = call(gd.numerical_gradient, lambda v: float(np.sum(v)), x, h=data.draw(hyper()))
    elif what == "linreg":
        rows = data.draw(st.sampled_from(SIZES))
        X = like(data, (rows, 2), "float64")
        y = like(data, (rows,), "float64")
        ok, r = call(gd.linear_regression, X, y, method=data.draw(st.sampled_from(["gd", "lstsq", "x"])),
                     lr=data.draw(hyper()), max_iter=50)
        if ok and r.converged and not np.isfinite(r.mse):
            record("wrong", "linear_regression converged with a non-finite mse")
    else:
        ok, _ = call(gd.set_num_threads, data.draw(threads()))
        gd.set_num_threads(None)
    COUNTS["accepted"] += bool(ok)


REPLICAS = 5

GROUPS = {"kernels": kernels_case, "optim": optim_case, "network": network_case,
          "toolkit": toolkit_case}


def main():
    group, n_examples, run_seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    case = GROUPS[group]

    @seed(run_seed)
    @settings(max_examples=n_examples, deadline=None, database=None, derandomize=False,
              suppress_health_check=list(HealthCheck), phases=["generate"])
    @given(st.data())
    def run(data):
        replay = Replay(data)
        REPLICA["rng"] = np.random.default_rng(data.draw(st.integers(0, 2**32)))
        case(replay)
        for _ in range(REPLICAS - 1):
            replay.replay()
            case(replay)

    run()
    print(json.dumps(dict(COUNTS, group=group, examples=EXAMPLES)))


if __name__ == "__main__":
    main()
