"""Per-step schedules, warm-up / one-cycle / warm restarts / chaining, registration of
custom schedules, and how fit applies them (native and reference, per step, rollback)."""
import json
import math

import numpy as np
import pytest

import gdcore as gd
from gdcore import schedules
from gdcore.schedules import (CosineAnnealing, CosineWarmRestarts, LinearWarmup, OneCycle,
                              ReduceLROnPlateau, Schedule, Sequential, StepDecay,
                              from_state_dict)


def rates(schedule, n, base=1.0):
    schedule.start(base)
    return [schedule.lr_at(t) for t in range(n)]


# ---- values against hand-computed tables --------------------------------------------

def test_linear_warmup_table():
    # base 1, start 1/4 over 4 steps: 1/4 + 3/4 * t/4, then flat (exact in binary)
    assert rates(LinearWarmup(4, start_factor=0.25), 7) == [0.25, 0.4375, 0.625, 0.8125,
                                                            1.0, 1.0, 1.0]
    # torch LinearLR defaults: start 1/3, end 1, total_iters 5
    s = LinearWarmup(5)
    assert s.unit == "step"
    assert rates(s, 7, base=0.3) == pytest.approx(
        [0.3 * (1 / 3 + (2 / 3) * min(t, 5) / 5) for t in range(7)], rel=1e-15)
    # decreasing factor: end_factor < start_factor
    assert rates(LinearWarmup(2, start_factor=1.0, end_factor=0.5), 4) == [1.0, 0.75, 0.5,
                                                                          0.5]


def test_one_cycle_table_cos_and_linear():
    # total 10, pct_start 0.3: the rise ends at step 0.3*10 - 1 = 2, the fall at 9;
    # initial = 1/25 = 0.04, minimum = 0.04 / 1e4
    cos = rates(OneCycle(10, max_lr=1.0), 12, base=123.0)
    assert cos[:3] == pytest.approx([0.04, 0.52, 1.0], rel=1e-15)
    for t in range(2, 10):
        pct = (t - 2) / 7
        expected = 4e-6 + (1.0 - 4e-6) / 2 * (math.cos(math.pi * pct) + 1)
        assert cos[t] == pytest.approx(expected, rel=1e-14)
    assert cos[9] == pytest.approx(4e-6, rel=1e-12)
    assert cos[10] == cos[11] == cos[9]          # past the cycle: the final rate stays
    lin = rates(OneCycle(10, max_lr=1.0, anneal_strategy="linear"), 10)
    assert lin[:3] == pytest.approx([0.04, 0.52, 1.0], rel=1e-15)
    assert lin[9] == pytest.approx(4e-6, rel=1e-12)
    assert lin[5] == pytest.approx(1.0 + (4e-6 - 1.0) * 3 / 7, rel=1e-14)


def test_one_cycle_three_phase_and_base_lr_peak():
    # ends at 2, 4 and 9: up to max, back to initial, down to the minimum
    r = rates(OneCycle(10, pct_start=0.3, three_phase=True, anneal_strategy="linear"),
              10, base=0.5)                       # max_lr=None: the optimizer's lr
    assert r[0] == pytest.approx(0.02, rel=1e-15)
    assert r[2] == pytest.approx(0.5, rel=1e-15)
    assert r[3] == pytest.approx(0.26, rel=1e-14)
    assert r[4] == pytest.approx(0.02, rel=1e-15)
    assert r[9] == pytest.approx(0.02 / 1e4, rel=1e-12)


def torch_warm_restarts(t, T_0, T_mult, eta_min, base):
    """torch CosineAnnealingWarmRestarts.step(epoch) for an integer epoch, transcribed
    from torch/optim/lr_scheduler.py (the logarithm form)."""
    if t >= T_0:
        if T_mult == 1:
            T_cur = t % T_0
            T_i = T_0
        else:
            n = int(math.log((t / T_0 * (T_mult - 1) + 1), T_mult))
            T_cur = t - T_0 * (T_mult ** n - 1) / (T_mult - 1)
            T_i = T_0 * T_mult ** n
    else:
        T_i, T_cur = T_0, t
    return eta_min + (base - eta_min) * (1 + math.cos(math.pi * T_cur / T_i)) / 2


@pytest.mark.parametrize("T_0, T_mult", [(1, 1), (3, 1), (2, 2), (3, 3), (5, 2)])
def test_warm_restarts_against_torch_formula(T_0, T_mult):
    got = rates(CosineWarmRestarts(T_0, T_mult, eta_min=0.01), 60, base=0.7)
    for t, lr in enumerate(got):
        assert lr == pytest.approx(torch_warm_restarts(t, T_0, T_mult, 0.01, 0.7),
                                   rel=1e-12, abs=1e-15), t


def test_warm_restarts_table():
    # T_0=2, T_mult=2: cycles [0, 2), [2, 6), [6, 14): restarts at 0, 2, 6
    r = rates(CosineWarmRestarts(2, 2), 8)
    assert r[0] == r[2] == r[6] == 1.0
    assert r[1] == pytest.approx(0.5, rel=1e-15)
    assert r[4] == pytest.approx(0.5, rel=1e-15)
    assert r[3] == pytest.approx((1 + math.cos(math.pi / 4)) / 2, rel=1e-15)


def test_sequential_warmup_then_cosine():
    s = Sequential([LinearWarmup(3, 0.25, unit="epoch"), CosineAnnealing(4)], [3])
    assert rates(s, 9) == pytest.approx([0.25, 0.5, 0.75, 1.0, (1 + math.cos(math.pi / 4)) / 2,
                                         0.5, (1 + math.cos(3 * math.pi / 4)) / 2, 0.0, 0.0],
                                        rel=1e-15, abs=1e-16)
    # three pieces; each restarts its count at its milestone
    s = Sequential([StepDecay(1, 0.5, unit="step"), LinearWarmup(2, 0.5),
                    StepDecay(2, 0.5, unit="step")], [2, 4])
    assert rates(s, 8) == [1.0, 0.5, 0.5, 0.75, 1.0, 1.0, 0.5, 0.5]
    assert s.unit == "step"


def test_sequential_forwards_epoch_end_to_the_running_schedule():
    plateau = ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, min_delta=0.0)
    s = Sequential([LinearWarmup(2, 0.5, unit="epoch"), plateau], [2])
    s.start(1.0)
    used = []
    for epoch in range(6):
        used.append(s.lr_at(epoch))
        s.epoch_end(epoch, {"loss": 1.0})        # never improves after its first epoch
    # warm-up 0.5, 0.75; then the plateau's own epochs 0 (improves), 1 (bad: reduce)...
    assert used == [0.5, 0.75, 1.0, 1.0, 0.5, 0.25]
    back = from_state_dict(json.loads(json.dumps(s.state_dict())))
    assert back == s and back.lr_at(6) == s.lr_at(6) == 0.125


@pytest.mark.parametrize("make, match", [
    (lambda: Sequential([], []), "at least one"),
    (lambda: Sequential([StepDecay(2)], [3]), "one fewer"),
    (lambda: Sequential([StepDecay(2), StepDecay(3)], [0]), "milestones"),
    (lambda: Sequential([StepDecay(2), StepDecay(3), StepDecay(4)], [3, 3]), "increase"),
    (lambda: Sequential([StepDecay(2), StepDecay(3, unit="step")], [3]), "one unit"),
    (lambda: Sequential([StepDecay(2)] * 2, [3]), "twice"),
    (lambda: LinearWarmup(0), "total_iters"),
    (lambda: LinearWarmup(3, start_factor=0.0), "start_factor"),
    (lambda: LinearWarmup(3, unit="batch"), "unit"),
    (lambda: OneCycle(1), "total_steps"),
    (lambda: OneCycle(10, pct_start=1.0), "pct_start"),
    (lambda: OneCycle(10, anneal_strategy="cosine"), "anneal_strategy"),
    (lambda: OneCycle(10, max_lr=0.0), "max_lr"),
    (lambda: CosineWarmRestarts(0), "T_0"),
    (lambda: CosineWarmRestarts(2, T_mult=0), "T_mult"),
])
def test_bad_parameters(make, match):
    with pytest.raises((TypeError, ValueError), match=match):
        make()


@pytest.mark.parametrize("make", [
    lambda: LinearWarmup(7, 0.1, 0.9, unit="epoch"),
    lambda: OneCycle(50, max_lr=0.3, pct_start=0.25, anneal_strategy="linear",
                     three_phase=True),
    lambda: OneCycle(50),
    lambda: CosineWarmRestarts(3, 2, 0.001, unit="step"),
    lambda: Sequential([LinearWarmup(5), OneCycle(20)], [5]),
    lambda: StepDecay(4, 0.5, unit="step"),
])
def test_state_round_trip_continues_identically(make):
    s = make()
    s.start(0.1 * 3)
    back = from_state_dict(json.loads(json.dumps(s.state_dict())))
    assert back == s
    assert [back.lr_at(t) for t in range(80)] == [s.lr_at(t) for t in range(80)]
    fresh = s._fresh_copy()
    assert fresh.base_lr is None and fresh == make()


def test_state_dict_saved_before_units_loads_per_epoch():
    d = {"type": "StepDecay", "params": {"step_size": 2, "gamma": 0.5},
         "state": {"base_lr": 1.0}}
    s = from_state_dict(d)
    assert s.unit == "epoch" and s.lr_at(2) == 0.5


# ---- custom schedules: registration, save and load -------------------------------------

@schedules.register
class HalvingEvery(Schedule):
    """Halve every ``every`` epochs; counts its epoch_end calls (state)."""

    _param_names = ("every",)
    _state_names = ("base_lr", "seen")

    def __init__(self, every):
        super().__init__()
        self.every = every
        self.seen = 0

    def _rate(self, epoch):
        return self.base_lr * 0.5 ** (epoch // self.every)

    def epoch_end(self, epoch, metrics):
        self.seen += 1

    def _load_state(self, state):
        super()._load_state(state)
        self.seen = int(state["seen"])


def data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    return X, (X[:, 0] + X[:, 1] > 0).astype(np.int64)


def test_custom_schedule_saves_and_loads(tmp_path):
    X, y = data()
    net = gd.MLP([3, 4, 2], seed=0)
    net.fit(X, y, epochs=3, optimizer=gd.optim.SGD(lr=0.4), lr_schedule=HalvingEvery(2))
    path = tmp_path / "net.npz"
    net.save(path)
    back = gd.load(path)
    assert isinstance(back.lr_schedule, HalvingEvery)
    assert back.lr_schedule == net.lr_schedule and back.lr_schedule.seen == 3
    h1 = net.fit(X, y, epochs=2)
    h2 = back.fit(X, y, epochs=2)
    assert h1.lr == h2.lr == [0.2, 0.1]
    np.testing.assert_array_equal(net.params, back.params)


def test_register_rejects_clashes_and_non_schedules():
    class StepDecay(Schedule):      # same name as a built-in one
        pass
    with pytest.raises(ValueError, match="built-in"):
        schedules.register(StepDecay)
    with pytest.raises(TypeError, match="subclass"):
        schedules.register(dict)
    with pytest.raises(TypeError, match="subclass"):
        schedules.register(Schedule)
    assert schedules.register(HalvingEvery) is HalvingEvery     # idempotent


def test_unregistered_schedule_names_the_decorator():
    class Unknown(Schedule):
        def _rate(self, epoch):
            return self.base_lr
    d = Unknown().state_dict()
    with pytest.raises(ValueError, match="register"):
        from_state_dict(d)


# ---- fit applies per-step rates ----------------------------------------------------------

def manual_run(net, X, y, sched, opt, epochs, batch):
    """What fit(shuffle=False) with a per-step schedule must equal: train_step per
    batch with the schedule's rate for the optimizer's step count."""
    sched.start(opt.lr)
    for _ in range(epochs):
        for a in range(0, len(X), batch):
            opt.lr = sched.lr_at(opt.step_count)
            net.train_step(X[a:a + batch], y[a:a + batch], opt)


@pytest.mark.parametrize("backend", ["native", "reference"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_fit_per_step_equals_train_steps(backend, dtype, n_threads, opt):
    X, y = data(37)
    X = X.astype(dtype)
    make_opt = {"sgd": lambda: gd.optim.SGD(lr=0.5, momentum=0.9),
                "adam": lambda: gd.optim.Adam(lr=0.05)}[opt]
    make_sched = lambda: Sequential([LinearWarmup(4, 0.25), OneCycle(12, max_lr=0.1)], [4])
    a = gd.MLP([3, 5, 2], seed=3, dtype=dtype, backend=backend)
    b = gd.MLP([3, 5, 2], seed=3, dtype=dtype, backend=backend)
    h = a.fit(X, y, epochs=3, batch_size=8, shuffle=False, optimizer=make_opt(),
              lr_schedule=make_sched(), n_threads=n_threads)
    opt_b = make_opt()
    manual_run(b, X, y, make_sched(), opt_b, 3, 8)
    np.testing.assert_array_equal(a.params, b.params)
    assert a.optimizer.lr == opt_b.lr                 # the last step's rate
    sched = make_sched()
    sched.start({"sgd": 0.5, "adam": 0.05}[opt])
    assert h.lr == [sched.lr_at(5 * e) for e in range(3)]    # 5 steps per epoch


def test_fit_per_step_native_equals_reference_and_split_runs():
    X, y = data(50)
    nets = []
    for backend in ("native", "reference"):
        net = gd.MLP([3, 6, 2], seed=1, backend=backend, dtype="float64")
        net.fit(X, y, epochs=2, batch_size=7, optimizer=gd.optim.Adam(lr=0.02),
                lr_schedule=CosineWarmRestarts(5, 2, unit="step"))
        net.fit(X, y, epochs=2, batch_size=7)          # the schedule and count continue
        nets.append(net)
    whole = gd.MLP([3, 6, 2], seed=1, dtype="float64")
    whole.fit(X, y, epochs=4, batch_size=7, optimizer=gd.optim.Adam(lr=0.02),
              lr_schedule=CosineWarmRestarts(5, 2, unit="step"))
    np.testing.assert_allclose(nets[0].params, nets[1].params, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(nets[0].params, whole.params)
    assert nets[0].history.lr == whole.history.lr


def test_fit_per_step_with_batch_source_equals_arrays():
    X, y = data(32)
    batches = [(X[a:a + 8], y[a:a + 8]) for a in range(0, 32, 8)]
    a = gd.MLP([3, 4, 2], seed=2)
    b = gd.MLP([3, 4, 2], seed=2)
    a.fit(batches, epochs=3, optimizer=gd.optim.SGD(lr=0.3), lr_schedule=OneCycle(12))
    b.fit(X, y, epochs=3, batch_size=8, shuffle=False, optimizer=gd.optim.SGD(lr=0.3),
          lr_schedule=OneCycle(12))
    np.testing.assert_array_equal(a.params, b.params)
    assert a.history.lr == b.history.lr


def test_step_callback_path_equals_native_epoch():
    X, y = data(30)
    a = gd.MLP([3, 4, 2], seed=4)
    b = gd.MLP([3, 4, 2], seed=4)
    seen = []
    a.fit(X, y, epochs=2, batch_size=4, optimizer=gd.optim.SGD(lr=0.2),
          lr_schedule=LinearWarmup(10), step_callback=lambda s, l: seen.append(s))
    b.fit(X, y, epochs=2, batch_size=4, optimizer=gd.optim.SGD(lr=0.2),
          lr_schedule=LinearWarmup(10))
    np.testing.assert_array_equal(a.params, b.params)
    assert seen == list(range(1, 17))


# ---- rollback: the schedule's state goes back with the epoch -----------------------------

@schedules.register
class FailingAt(Schedule):
    """Counts epochs in epoch_end and raises at epoch ``at`` after counting."""

    _param_names = ("at",)
    _state_names = ("base_lr", "seen")

    def __init__(self, at):
        super().__init__()
        self.at = at
        self.seen = 0

    def _rate(self, epoch):
        return self.base_lr

    def epoch_end(self, epoch, metrics):
        self.seen += 1
        if epoch == self.at:
            raise RuntimeError("schedule failure")

    def _load_state(self, state):
        super()._load_state(state)
        self.seen = int(state["seen"])


def test_schedule_state_rolls_back_with_a_failed_epoch():
    X, y = data()
    net = gd.MLP([3, 4, 2], seed=0)
    sched = FailingAt(2)
    with pytest.raises(RuntimeError, match="schedule failure"):
        net.fit(X, y, epochs=4, lr_schedule=sched)
    assert net.epochs_trained == 2 and sched.seen == 2 and len(net.history) == 2


def test_schedule_state_rolls_back_on_divergence():
    X, y = data()
    y = y.astype(np.float64)[:, None] * 1e3
    net = gd.MLP([3, 4, 1], seed=0, loss="squared_error", output="identity")
    plateau = ReduceLROnPlateau(monitor="loss", patience=0, factor=0.5)
    with pytest.warns(RuntimeWarning, match="diverged"):
        h = net.fit(X, y, epochs=30, optimizer=gd.optim.SGD(lr=50.0), lr_schedule=plateau)
    assert h.stop_reason == "diverged"
    # the plateau saw exactly the recorded epochs
    assert len(h) == 0 or plateau.best == min(h.loss)


def test_per_step_rates_hold_in_the_optimizer_after_a_rollback():
    X, y = data()
    net = gd.MLP([3, 4, 2], seed=0)
    opt = gd.optim.SGD(lr=0.1)
    net.fit(X, y, epochs=1, batch_size=10, optimizer=opt, lr_schedule=LinearWarmup(8))
    lr_after_1 = opt.lr

    calls = {"n": 0}

    def step_cb(step, loss):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        net.fit(X, y, epochs=1, batch_size=10, step_callback=step_cb)
    assert opt.lr == lr_after_1 and opt.step_count == 4 and net.epochs_trained == 1


# ---- optional: torch.optim.lr_scheduler itself ------------------------------------------

def test_against_torch_schedulers():
    torch = pytest.importorskip("torch")
    sch = torch.optim.lr_scheduler

    def torch_rates(make, n, lr=0.7):
        p = torch.nn.Parameter(torch.zeros(1))
        opt = torch.optim.SGD([p], lr=lr)
        s = make(opt)
        out = []
        for _ in range(n):
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            s.step()
        return out

    cases = [
        (lambda o: sch.LinearLR(o, 0.25, 1.0, 6), LinearWarmup(6, 0.25), 10),
        (lambda o: sch.OneCycleLR(o, max_lr=1.0, total_steps=20, cycle_momentum=False),
         OneCycle(20, max_lr=1.0), 20),
        (lambda o: sch.OneCycleLR(o, max_lr=1.0, total_steps=20, cycle_momentum=False,
                                  anneal_strategy="linear", three_phase=True),
         OneCycle(20, max_lr=1.0, anneal_strategy="linear", three_phase=True), 20),
        (lambda o: sch.CosineAnnealingWarmRestarts(o, 3, 2, 0.01),
         CosineWarmRestarts(3, 2, 0.01), 40),
    ]
    for make, ours, n in cases:
        np.testing.assert_allclose(rates(ours, n, base=0.7), torch_rates(make, n),
                                   rtol=1e-6, atol=1e-12)
