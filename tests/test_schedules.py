"""gdcore.schedules: documented rates, plateau logic, state round trips, validation."""
import json
import math

import numpy as np
import pytest

import gdcore as gd
from gdcore import schedules
from gdcore.schedules import (CosineAnnealing, ExponentialDecay, InverseTimeDecay,
                              ReduceLROnPlateau, Schedule, StepDecay, from_state_dict)

# 0.1 * 3 is not a short binary fraction: round trips must keep every bit of it
BASE = 0.1 * 3


def started(schedule, base=BASE):
    schedule.start(base)
    return schedule


def run_plateau(schedule, values, key="loss", base=1.0):
    """The rates used for each epoch (lr_at before, epoch_end after), as fit does."""
    schedule.start(base)
    rates = []
    for epoch, value in enumerate(values):
        rates.append(schedule.lr_at(epoch))
        schedule.epoch_end(epoch, {key: value})
    return rates


# ---- decay schedules: rates ---------------------------------------------------------

def test_step_decay_rates_power_of_two_gamma_exact():
    s = started(StepDecay(step_size=3, gamma=0.5), base=0.8)
    # epochs 0-2 at 0.8, 3-5 at 0.4, 6-8 at 0.2, 9-11 at 0.1, 12 at 0.05 (exact in binary)
    expected = [0.8] * 3 + [0.4] * 3 + [0.2] * 3 + [0.1] * 3 + [0.05]
    assert [s.lr_at(e) for e in range(13)] == expected


def test_step_decay_default_gamma_and_long_run():
    s = started(StepDecay(step_size=4))
    assert s.gamma == 0.1
    rate = BASE
    for epoch in range(40):
        if epoch and epoch % 4 == 0:
            rate *= 0.1
        assert s.lr_at(epoch) == pytest.approx(rate, rel=1e-12)
    assert s.lr_at(0) == BASE
    # constant within a step, one factor gamma across each boundary
    assert s.lr_at(7) == s.lr_at(4)
    assert s.lr_at(8) == pytest.approx(s.lr_at(7) * 0.1, rel=1e-12)


def test_step_decay_step_size_one_is_exponential():
    a, b = started(StepDecay(1, gamma=0.7)), started(ExponentialDecay(0.7))
    for epoch in range(30):
        assert a.lr_at(epoch) == pytest.approx(b.lr_at(epoch), rel=1e-12)


def test_exponential_decay_rates():
    s = started(ExponentialDecay(gamma=0.9))
    rate = BASE
    for epoch in range(60):
        assert s.lr_at(epoch) == pytest.approx(rate, rel=1e-12)
        rate *= 0.9
    assert s.lr_at(0) == BASE
    assert started(ExponentialDecay(0.5), base=1.0).lr_at(10) == 1.0 / 1024


def test_exponential_decay_gamma_one_is_constant_and_order_free():
    s = started(ExponentialDecay(1.0))
    assert [s.lr_at(e) for e in (5, 0, 1000, 3)] == [BASE] * 4


def test_inverse_time_decay_rates():
    s = started(InverseTimeDecay(decay_rate=0.5, decay_steps=2), base=1.0)
    # 1 / (1 + 0.25 * epoch)
    assert s.lr_at(0) == 1.0
    assert s.lr_at(4) == 0.5
    assert s.lr_at(12) == 0.25
    for epoch in range(50):
        assert s.lr_at(epoch) == pytest.approx(1.0 / (1.0 + 0.25 * epoch), rel=1e-14)


def test_inverse_time_decay_default_steps_and_zero_rate():
    s = started(InverseTimeDecay(decay_rate=1.0), base=2.0)
    assert [s.lr_at(e) for e in range(4)] == [2.0, 1.0, 2.0 / 3.0, 0.5]
    flat = started(InverseTimeDecay(decay_rate=0.0))
    assert all(flat.lr_at(e) == BASE for e in range(20))


def test_cosine_annealing_rates():
    T_max, eta_min, base = 10, 0.01, 0.1
    s = started(CosineAnnealing(T_max, eta_min=eta_min), base=base)
    assert s.lr_at(0) == base
    # halfway: the mean of the two ends
    assert s.lr_at(5) == pytest.approx((base + eta_min) / 2, rel=1e-14)
    assert s.lr_at(T_max) == eta_min
    # symmetric around T_max / 2: lr(e) + lr(T_max - e) = base + eta_min
    for epoch in range(T_max + 1):
        assert s.lr_at(epoch) + s.lr_at(T_max - epoch) == pytest.approx(base + eta_min,
                                                                        rel=1e-14)
    rates = [s.lr_at(e) for e in range(T_max + 1)]
    assert all(a > b for a, b in zip(rates, rates[1:]))
    # a quarter of the way: cos(pi/4) = sqrt(2)/2 (T_max = 8 makes epoch 2 exact)
    q = started(CosineAnnealing(8), base=1.0)
    assert q.lr_at(2) == pytest.approx((1 + math.sqrt(0.5)) / 2, rel=1e-14)
    assert q.lr_at(6) == pytest.approx((1 - math.sqrt(0.5)) / 2, rel=1e-13)


def test_cosine_annealing_stays_at_eta_min_after_t_max():
    s = started(CosineAnnealing(4, eta_min=0.002), base=0.05)
    assert [s.lr_at(e) for e in (4, 5, 6, 8, 100, 10**6)] == [0.002] * 6
    zero = started(CosineAnnealing(3))
    assert zero.lr_at(3) == 0.0 and zero.lr_at(7) == 0.0


def test_decay_schedules_ignore_epoch_end():
    for s in (StepDecay(2), ExponentialDecay(0.9), InverseTimeDecay(0.1), CosineAnnealing(5)):
        started(s)
        before = [s.lr_at(e) for e in range(10)]
        for epoch in range(10):
            s.epoch_end(epoch, {"loss": 1.0, "val_loss": 2.0, "val_accuracy": 0.5})
        assert [s.lr_at(e) for e in range(10)] == before


# ---- start / lr_at contract ---------------------------------------------------------

ALL = [
    lambda: StepDecay(3, gamma=0.5),
    lambda: ExponentialDecay(0.95),
    lambda: InverseTimeDecay(0.3, decay_steps=4),
    lambda: CosineAnnealing(7, eta_min=1e-3),
    lambda: ReduceLROnPlateau(patience=2),
]
ALL_IDS = ["step", "exponential", "inverse_time", "cosine", "plateau"]


@pytest.mark.parametrize("make", ALL, ids=ALL_IDS)
def test_lr_at_before_start_raises(make):
    s = make()
    assert s.base_lr is None
    with pytest.raises(RuntimeError, match="start"):
        s.lr_at(0)


@pytest.mark.parametrize("make", ALL, ids=ALL_IDS)
def test_start_keeps_the_first_base(make):
    s = make()
    s.start(0.25)
    s.start(0.5)
    assert s.base_lr == 0.25
    assert s.lr_at(0) == 0.25


@pytest.mark.parametrize("make", ALL, ids=ALL_IDS)
def test_bad_start_and_epoch(make):
    s = make()
    with pytest.raises(ValueError, match="base_lr"):
        s.start(-0.1)
    with pytest.raises(TypeError, match="base_lr"):
        s.start("fast")
    with pytest.raises(ValueError, match="base_lr"):
        s.start(math.nan)
    s.start(0.1)
    with pytest.raises(ValueError, match="epoch"):
        s.lr_at(-1)
    with pytest.raises(TypeError, match="epoch"):
        s.lr_at(1.5)


@pytest.mark.parametrize("make", ALL, ids=ALL_IDS)
def test_repr_rebuilds_an_equal_schedule(make):
    s = make()
    text = repr(s)
    assert text.startswith(type(s).__name__ + "(")
    assert eval(text, vars(schedules)) == s


@pytest.mark.parametrize("call, exc, name", [
    (lambda: StepDecay(0), ValueError, "step_size"),
    (lambda: StepDecay(2.5), TypeError, "step_size"),
    (lambda: StepDecay(2, gamma=0.0), ValueError, "gamma"),
    (lambda: StepDecay(2, gamma=1.5), ValueError, "gamma"),
    (lambda: StepDecay(2, gamma=math.nan), ValueError, "gamma"),
    (lambda: ExponentialDecay(-0.5), ValueError, "gamma"),
    (lambda: ExponentialDecay("fast"), TypeError, "gamma"),
    (lambda: InverseTimeDecay(-0.1), ValueError, "decay_rate"),
    (lambda: InverseTimeDecay(0.1, decay_steps=0), ValueError, "decay_steps"),
    (lambda: InverseTimeDecay(0.1, decay_steps=math.inf), ValueError, "decay_steps"),
    (lambda: CosineAnnealing(0), ValueError, "T_max"),
    (lambda: CosineAnnealing(None), TypeError, "T_max"),
    (lambda: CosineAnnealing(5, eta_min=-1e-3), ValueError, "eta_min"),
    (lambda: ReduceLROnPlateau(monitor="val_accuracy"), ValueError, "monitor"),
    (lambda: ReduceLROnPlateau(factor=1.0), ValueError, "factor"),
    (lambda: ReduceLROnPlateau(factor=-0.5), ValueError, "factor"),
    (lambda: ReduceLROnPlateau(patience=-1), ValueError, "patience"),
    (lambda: ReduceLROnPlateau(patience=True), TypeError, "patience"),
    (lambda: ReduceLROnPlateau(min_delta=-1e-4), ValueError, "min_delta"),
    (lambda: ReduceLROnPlateau(cooldown=-2), ValueError, "cooldown"),
    (lambda: ReduceLROnPlateau(cooldown=0.5), TypeError, "cooldown"),
    (lambda: ReduceLROnPlateau(min_lr=-1.0), ValueError, "min_lr"),
])
def test_bad_parameters_raise(call, exc, name):
    with pytest.raises(exc, match=name):
        call()


# ---- ReduceLROnPlateau ----------------------------------------------------------------

def test_plateau_reduces_after_exactly_patience_bad_epochs():
    s = ReduceLROnPlateau(monitor="loss", factor=0.5, patience=3, min_delta=0.0)
    # epoch 0 sets best; epochs 1, 2, 3 are bad: the rate halves from epoch 4 on
    rates = run_plateau(s, [1.0] * 5)
    assert rates == [1.0, 1.0, 1.0, 1.0, 0.5]


def test_plateau_keeps_reducing_every_patience_epochs_without_cooldown():
    s = ReduceLROnPlateau(monitor="loss", factor=0.5, patience=2, min_delta=0.0)
    rates = run_plateau(s, [3.0] * 9)
    # reductions at the end of epochs 2, 4, 6, 8
    assert rates == [1.0, 1.0, 1.0, 0.5, 0.5, 0.25, 0.25, 0.125, 0.125]
    assert s.lr_at(9) == 0.0625


def test_plateau_improvement_resets_the_count():
    s = ReduceLROnPlateau(monitor="loss", factor=0.5, patience=2, min_delta=0.0)
    # bad, improvement, bad, bad -> reduction only after the last epoch
    rates = run_plateau(s, [1.0, 1.0, 0.9, 0.95, 0.9])
    assert rates == [1.0] * 5
    assert s.lr_at(5) == 0.5
    assert s.best == 0.9


def test_plateau_cooldown_skips_counting():
    patience, cooldown = 2, 3
    s = ReduceLROnPlateau(monitor="loss", factor=0.5, patience=patience, min_delta=0.0,
                          cooldown=cooldown)
    rates = run_plateau(s, [1.0] * 16)
    # first reduction at the end of epoch 2, then every cooldown + patience = 5 epochs
    reductions = [2, 7, 12]
    expected = [0.5 ** sum(r < e for r in reductions) for e in range(16)]
    assert rates == expected
    # the reduction at epoch 12 started a cooldown of 3 that epochs 13-15 used up
    assert s.cooldown_counter == 0


def test_plateau_improvement_during_cooldown_updates_best():
    s = ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, min_delta=0.0,
                          cooldown=2)
    run_plateau(s, [1.0, 1.0, 0.5])
    # epoch 1 reduced; epoch 2 is in cooldown but improves
    assert s.best == 0.5
    assert s.lr_at(3) == 0.5
    assert s.bad_epochs == 0


def test_plateau_min_delta_is_absolute():
    s = ReduceLROnPlateau(monitor="loss", factor=0.5, patience=2, min_delta=0.1)
    # 0.95 and 0.905 are within 0.1 of best = 1.0: bad epochs, so a reduction
    run_plateau(s, [1.0, 0.95, 0.905])
    assert s.best == 1.0
    assert s.lr_at(3) == 0.5
    t = ReduceLROnPlateau(monitor="loss", factor=0.5, patience=2, min_delta=0.1)
    # 0.89 < 1.0 - 0.1 is an improvement: no reduction
    run_plateau(t, [1.0, 0.95, 0.89])
    assert t.best == 0.89
    assert t.lr_at(3) == 1.0
    # absolute, not relative: near 1000 a decrease of 5e-4 beats min_delta = 1e-4
    # (a relative threshold of 1e-4 would ask for a decrease of 0.1)
    u = ReduceLROnPlateau(monitor="loss", patience=1, min_delta=1e-4)
    run_plateau(u, [1000.0, 999.9995])
    assert u.best == 999.9995
    assert u.lr_at(2) == 1.0


def test_plateau_min_lr_floor():
    s = ReduceLROnPlateau(monitor="loss", factor=0.1, patience=1, min_lr=0.05)
    rates = run_plateau(s, [1.0] * 6)
    assert rates[0] == 1.0
    assert rates[1] == 1.0
    assert rates[2] == pytest.approx(0.1, rel=1e-15)
    assert rates[3:] == [0.05] * 3
    # a base rate already below min_lr is never raised to it
    low = ReduceLROnPlateau(monitor="loss", factor=0.1, patience=1, min_lr=0.05)
    assert run_plateau(low, [1.0] * 5, base=0.01) == [0.01] * 5


def test_plateau_factor_zero_drops_to_min_lr():
    s = ReduceLROnPlateau(monitor="loss", factor=0.0, patience=1, min_lr=1e-5)
    assert run_plateau(s, [2.0, 2.0, 2.0]) == [1.0, 1.0, 1e-5]


def test_plateau_patience_zero_acts_as_one():
    a = ReduceLROnPlateau(monitor="loss", factor=0.5, patience=0, min_delta=0.0)
    b = ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, min_delta=0.0)
    values = [1.0, 1.0, 0.5, 0.6, 0.6]
    assert run_plateau(a, values) == run_plateau(b, values) == [1.0, 1.0, 0.5, 0.5, 0.25]


def test_plateau_watches_val_loss_when_present():
    s = ReduceLROnPlateau(factor=0.5, patience=2, min_delta=0.0)
    assert s.monitor == "val_loss"
    s.start(1.0)
    for epoch in range(3):
        # training loss improves, validation loss does not
        s.epoch_end(epoch, {"loss": 1.0 - 0.1 * epoch, "val_loss": 2.0,
                            "val_accuracy": 0.5})
    assert s.best == 2.0
    assert s.lr_at(3) == 0.5


def test_plateau_falls_back_to_loss_without_validation():
    values = [1.0, 0.8, 0.8, 0.8, 0.7, 0.7, 0.7, 0.7]
    fallback = ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2, min_delta=0.0)
    direct = ReduceLROnPlateau(monitor="loss", factor=0.5, patience=2, min_delta=0.0)
    rates = run_plateau(fallback, values)
    assert rates == run_plateau(direct, values)
    assert rates == [1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25]
    # val_loss present but None counts as missing too
    s = ReduceLROnPlateau(patience=1, min_delta=0.0)
    s.start(1.0)
    s.epoch_end(0, {"loss": 3.0, "val_loss": None})
    assert s.best == 3.0


def test_plateau_nan_never_improves():
    s = ReduceLROnPlateau(monitor="loss", factor=0.5, patience=2, min_delta=0.0)
    rates = run_plateau(s, [1.0, math.nan, math.nan, 0.5])
    assert rates == [1.0, 1.0, 1.0, 0.5]
    assert s.best == 0.5
    first = ReduceLROnPlateau(monitor="loss", patience=1)
    run_plateau(first, [math.nan])
    assert first.best is None


def test_plateau_bad_metrics():
    s = ReduceLROnPlateau(patience=2)
    with pytest.raises(RuntimeError, match="start"):
        s.epoch_end(0, {"loss": 1.0})
    s.start(0.1)
    with pytest.raises(ValueError, match="'loss'"):
        s.epoch_end(0, {"val_accuracy": 0.9})
    with pytest.raises(TypeError, match="metrics"):
        s.epoch_end(0, [("loss", 1.0)])
    with pytest.raises(TypeError, match="real number"):
        s.epoch_end(0, {"val_loss": "low"})
    with pytest.raises(ValueError, match="epoch"):
        s.epoch_end(-1, {"loss": 1.0})
    assert s.best is None and s.bad_epochs == 0


# ---- state_dict round trips ---------------------------------------------------------

def _is_plain_json(value):
    if value is None or isinstance(value, (str, bool, int, float)):
        return True
    if isinstance(value, list):
        return all(_is_plain_json(x) for x in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_plain_json(x) for k, x in value.items())
    return False


LOSSES = [1.0, 0.9, 0.91, 0.92, 0.93, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.3,
          0.31, 0.32, 0.33, 0.34, 0.35, 0.36]


def _drive(s, epochs, offset=0):
    rates = []
    for epoch in range(offset, offset + epochs):
        rates.append(s.lr_at(epoch))
        loss = LOSSES[epoch % len(LOSSES)]
        s.epoch_end(epoch, {"loss": loss, "val_loss": loss * 1.1})
    return rates


@pytest.mark.parametrize("through_json", [False, True], ids=["dict", "json"])
@pytest.mark.parametrize("make", ALL + [
    lambda: ReduceLROnPlateau(factor=1 / 3, patience=2, min_delta=1e-3, cooldown=2,
                              min_lr=1e-4),
], ids=ALL_IDS + ["plateau-cooldown"])
def test_state_dict_round_trip_continues_identically(make, through_json):
    s = make()
    s.start(BASE)
    _drive(s, 9)
    d = s.state_dict()
    assert _is_plain_json(d)
    assert d["type"] == type(s).__name__
    assert d["state"]["base_lr"] == BASE
    if through_json:
        d = json.loads(json.dumps(d))
    clone = from_state_dict(d)
    assert type(clone) is type(s)
    assert clone == s
    assert clone.state_dict() == s.state_dict()
    # the same rates, bit for bit, for past and future epochs and future metrics
    assert [clone.lr_at(e) for e in range(30)] == [s.lr_at(e) for e in range(30)]
    assert _drive(clone, 25, offset=9) == _drive(s, 25, offset=9)
    assert clone.state_dict() == s.state_dict()


def test_plateau_state_holds_its_counters():
    s = ReduceLROnPlateau(monitor="loss", factor=0.5, patience=3, cooldown=4)
    run_plateau(s, [2.0, 1.0, 1.5, 1.5], base=0.2)
    state = s.state_dict()["state"]
    assert state == {"base_lr": 0.2, "lr": 0.2, "best": 1.0, "bad_epochs": 2,
                     "cooldown_counter": 0}
    s.epoch_end(4, {"loss": 1.5})
    state = s.state_dict()["state"]
    assert state["lr"] == 0.1 and state["bad_epochs"] == 0 and state["cooldown_counter"] == 4
    assert s.state_dict()["params"] == {"monitor": "loss", "factor": 0.5, "patience": 3,
                                        "min_delta": 1e-4, "cooldown": 4, "min_lr": 0.0}


@pytest.mark.parametrize("make", ALL, ids=ALL_IDS)
def test_unstarted_round_trip(make):
    s = make()
    clone = from_state_dict(json.loads(json.dumps(s.state_dict())))
    assert clone == s
    with pytest.raises(RuntimeError):
        clone.lr_at(0)
    clone.start(0.5)
    s.start(0.5)
    assert [clone.lr_at(e) for e in range(10)] == [s.lr_at(e) for e in range(10)]


def test_schedule_from_state_dict_alias():
    s = started(CosineAnnealing(12, eta_min=0.003))
    assert Schedule.from_state_dict(s.state_dict()) == s
    assert StepDecay.from_state_dict(s.state_dict()) == s


def test_equality_depends_on_params_and_state():
    assert StepDecay(2) == StepDecay(2)
    assert StepDecay(2) != StepDecay(3)
    assert StepDecay(1, gamma=0.5) != ExponentialDecay(0.5)
    assert started(StepDecay(2)) != StepDecay(2)


def _plateau_dict():
    s = ReduceLROnPlateau(patience=3, cooldown=2)
    s.start(0.1)
    return s.state_dict()


def _edit(d, path, value):
    d = json.loads(json.dumps(d))
    *head, last = path
    target = d
    for key in head:
        target = target[key]
    if value is KeyError:
        del target[last]
    else:
        target[last] = value
    return d


@pytest.mark.parametrize("path, value, match", [
    (("type",), "NoSuchSchedule", "unknown schedule type"),
    (("type",), 3, "unknown schedule type"),
    (("type",), KeyError, "keys"),
    (("extra",), 1, "keys"),
    (("params", "patience"), KeyError, "params"),
    (("params", "gamma"), 0.1, "params"),
    (("params", "patience"), -1, "patience"),
    (("params", "factor"), "half", "factor"),
    (("params",), [1, 2], "params"),
    (("state", "best"), KeyError, "state"),
    (("state",), None, "state"),
    (("state", "bad_epochs"), -1, "bad_epochs"),
    (("state", "bad_epochs"), 3, "bad_epochs"),
    (("state", "bad_epochs"), 1.5, "bad_epochs"),
    (("state", "cooldown_counter"), 3, "cooldown_counter"),
    (("state", "lr"), None, "lr"),
    (("state", "lr"), -0.1, "lr"),
    (("state", "best"), "inf", "best"),
    (("state", "base_lr"), -1.0, "base_lr"),
])
def test_from_state_dict_rejects_bad_fields(path, value, match):
    with pytest.raises(ValueError, match=match):
        from_state_dict(_edit(_plateau_dict(), path, value))


def test_from_state_dict_rejects_bad_decay_fields():
    d = started(StepDecay(2)).state_dict()
    with pytest.raises(ValueError, match="step_size"):
        from_state_dict(_edit(d, ("params", "step_size"), 0))
    with pytest.raises(ValueError, match="base_lr"):
        from_state_dict(_edit(d, ("state", "base_lr"), "fast"))
    with pytest.raises(ValueError, match="state"):
        from_state_dict(_edit(d, ("state", "lr"), 0.1))
    with pytest.raises(TypeError, match="dict"):
        from_state_dict("StepDecay(2)")


def test_public_names():
    assert set(schedules.__all__) == {"Schedule", "StepDecay", "ExponentialDecay",
                                      "InverseTimeDecay", "CosineAnnealing",
                                      "ReduceLROnPlateau", "LinearWarmup", "OneCycle",
                                      "CosineWarmRestarts", "Sequential", "register",
                                      "from_state_dict"}
    for name in schedules.__all__:
        assert hasattr(schedules, name)


# ---- with MLP.fit ----------------------------------------------------------------------


def _blobs(n=64):
    rng = np.random.default_rng(0)
    T = np.arange(n) % 2
    X = (np.where(T[:, None] == 1, 1.5, -1.5) + rng.standard_normal((n, 2)))
    return X.astype(np.float32), T


def test_fit_uses_the_schedule_across_fit_calls():
    X, T = _blobs()
    net = gd.MLP([2, 4, 2], seed=0)
    schedule = StepDecay(2, gamma=0.5)
    first = net.fit(X, T, epochs=3, optimizer=gd.optim.SGD(lr=0.2), lr_schedule=schedule,
                    progress=False)
    second = net.fit(X, T, epochs=3, progress=False)
    # epochs 0-5 of one schedule; the second fit's start() keeps the base of 0.2
    assert first.lr + second.lr == [0.2, 0.2, 0.1, 0.1, 0.05, 0.05]
    assert schedule.base_lr == 0.2


def test_fit_plateau_follows_the_training_loss_without_validation(tmp_path):
    X, T = _blobs()
    net = gd.MLP([2, 4, 2], seed=1)
    schedule = ReduceLROnPlateau(factor=0.5, patience=1, min_delta=0.05)
    history = net.fit(X, T, epochs=8, optimizer=gd.optim.SGD(lr=0.5), batch_size=8,
                      lr_schedule=schedule, progress=False)
    # replay the recorded losses through a fresh schedule watching 'loss'
    replay = ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, min_delta=0.05)
    assert history.lr == run_plateau(replay, history.loss, base=0.5)
    assert history.lr[-1] < 0.5
    assert schedule.state_dict()["state"] == replay.state_dict()["state"]
    path = tmp_path / "net.npz"
    net.save(path)
    assert gd.load(path).lr_schedule == schedule
