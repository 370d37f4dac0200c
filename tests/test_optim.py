"""gdcore.optim: torch.optim semantics over flat buffers."""
import inspect
import math
import pickle

import numpy as np
import pytest

import gdcore as gd
from gdcore import kernels, optim, reference
from gdcore.reference.optimizers import nadam_mu_product

# (class, constructor options, update function options derived from them)
CONFIGS = [
    (optim.SGD, dict(lr=0.1)),
    (optim.SGD, dict(lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01)),
    (optim.SGD, dict(lr=0.05, momentum=0.9, nesterov=True)),
    (optim.Adagrad, dict(lr=0.1, lr_decay=0.01, weight_decay=0.01,
                         initial_accumulator_value=0.1)),
    (optim.Adadelta, dict(lr=0.5, rho=0.8, weight_decay=0.01)),
    (optim.RMSprop, dict(lr=0.01, alpha=0.9, weight_decay=0.01)),
    (optim.RMSprop, dict(lr=0.01, momentum=0.5, centered=True)),
    (optim.Adam, dict(lr=0.01, weight_decay=0.01)),
    (optim.Adam, dict(lr=0.01, betas=(0.8, 0.95), amsgrad=True)),
    (optim.AdamW, dict(lr=0.01)),
    (optim.AdamW, dict(lr=0.01, weight_decay=0.1, amsgrad=True)),
    (optim.NAdam, dict(lr=0.01, weight_decay=0.01, momentum_decay=0.01)),
    (optim.NAdam, dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)),
    (optim.Adamax, dict(lr=0.01, weight_decay=0.01)),
    (optim.RAdam, dict(lr=0.01, betas=(0.8, 0.9), weight_decay=0.01)),
    (optim.RAdam, dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)),
    (optim.Rprop, dict(lr=0.05, etas=(0.4, 1.3), step_sizes=(1e-4, 0.2))),
]
IDS = [f"{cls.__name__}-{i}" for i, (cls, _) in enumerate(CONFIGS)]

TORCH_DEFAULTS = {
    optim.SGD: dict(lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False),
    optim.Adagrad: dict(lr=1e-2, lr_decay=0.0, weight_decay=0.0,
                        initial_accumulator_value=0.0, eps=1e-10),
    optim.Adadelta: dict(lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0),
    optim.RMSprop: dict(lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                        centered=False),
    optim.Adam: dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False),
    optim.AdamW: dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                      amsgrad=False),
    optim.NAdam: dict(lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                      momentum_decay=4e-3, decoupled_weight_decay=False),
    optim.Adamax: dict(lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0),
    optim.RAdam: dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                      decoupled_weight_decay=False),
    optim.Rprop: dict(lr=1e-2, etas=(0.5, 1.2), step_sizes=(1e-6, 50)),
}


def _reference_steps(cls, options, params, grads_seq):
    """The same steps through gdcore.reference's update functions, state kept by hand."""
    name = cls.kernel[: -len("_update")]
    state_options = {k: options[k] for k in cls._state_options if k in options}
    state = reference.optimizer_state(name, params, **state_options)
    kwargs = {k: val for k, val in options.items() if k not in cls._state_only}
    update = getattr(reference, cls.kernel)
    for step, g in enumerate(grads_seq, start=1):
        extra = {"step": step} if cls._uses_step else {}
        update(params, g, **state, **kwargs, **extra)
    return params, state


@pytest.mark.parametrize("cls", list(TORCH_DEFAULTS))
def test_defaults_are_torch_defaults(cls):
    opt = cls()
    assert opt.hyperparameters == TORCH_DEFAULTS[cls]
    sig = inspect.signature(cls)
    for name, default in TORCH_DEFAULTS[cls].items():
        assert sig.parameters[name].default == default


@pytest.mark.parametrize("cls, options", CONFIGS, ids=IDS)
@pytest.mark.parametrize("backend", ["native", "reference"])
def test_steps_match_the_update_functions_bitwise(cls, options, backend, dtype, rng):
    params = rng.standard_normal(301).astype(dtype)
    grads_seq = [rng.standard_normal(301).astype(dtype) for _ in range(6)]
    expected, expected_state = _reference_steps(cls, options, params.copy(), grads_seq)
    opt = cls(**options, backend=backend)
    for g in grads_seq:
        g_before = g.copy()
        assert opt.step(params, g) is params
        np.testing.assert_array_equal(g, g_before)
    assert opt.step_count == len(grads_seq)
    np.testing.assert_array_equal(params, expected)
    assert set(opt.state) == set(expected_state)
    for key, buf in opt.state.items():
        assert buf.dtype == dtype
        np.testing.assert_array_equal(buf, expected_state[key])


@pytest.mark.parametrize("cls, options", CONFIGS, ids=IDS)
def test_state_dict_round_trip_continues_identically(cls, options, rng):
    params = rng.standard_normal(50)
    grads_seq = [rng.standard_normal(50) for _ in range(8)]
    straight = cls(**options)
    p_straight = params.copy()
    for g in grads_seq:
        straight.step(p_straight, g)

    first = cls(**options)
    p_resumed = params.copy()
    for g in grads_seq[:4]:
        first.step(p_resumed, g)
    saved = first.state_dict()
    for g in grads_seq[:2]:            # the saved copy must not follow the optimizer
        first.step(np.zeros(50), g)
    resumed = cls(**{k: val for k, val in TORCH_DEFAULTS[cls].items()})
    resumed.load_state_dict(saved)
    assert resumed.hyperparameters == first.hyperparameters
    assert resumed.step_count == 4
    for g in grads_seq[4:]:
        resumed.step(p_resumed, g)
    np.testing.assert_array_equal(p_resumed, p_straight)


def test_state_dict_holds_only_plain_values_and_arrays(rng):
    opt = optim.Adam(amsgrad=True)
    opt.step(rng.standard_normal(5), rng.standard_normal(5))
    d = opt.state_dict()
    assert d["optimizer"] == "Adam" and d["step"] == 1
    assert set(d["state"]) == {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"}
    assert d["hyperparameters"]["amsgrad"] is True


def test_load_state_dict_rejects_mismatches(rng):
    saved = optim.Adam().state_dict()
    with pytest.raises(ValueError, match="Adam"):
        optim.SGD().load_state_dict(saved)
    with pytest.raises(ValueError, match="state_dict"):
        optim.Adam().load_state_dict({"step": 1})
    bad = optim.Adam(amsgrad=True)
    bad.step(rng.standard_normal(3), rng.standard_normal(3))
    d = bad.state_dict()
    del d["state"]["max_exp_avg_sq"]
    with pytest.raises(ValueError, match="max_exp_avg_sq"):
        optim.Adam().load_state_dict(d)
    d = optim.Adam().state_dict()
    d["hyperparameters"]["lr"] = -1.0
    with pytest.raises(ValueError, match="lr"):
        optim.Adam().load_state_dict(d)


def test_lr_is_settable_between_steps_and_used(rng):
    params = rng.standard_normal(10)
    g = rng.standard_normal(10)
    opt = optim.SGD(lr=0.1)
    opt.step(params, g)
    opt.lr = 0.01
    before = params.copy()
    opt.step(params, g)
    np.testing.assert_allclose(params, before - 0.01 * g, rtol=1e-15)
    with pytest.raises(ValueError, match="lr"):
        opt.lr = -0.5
    with pytest.raises(AttributeError, match="momentum"):
        opt.momentum = 0.9


def test_state_follows_params_dtype_and_shape(rng):
    opt = optim.Adam()
    p32 = rng.standard_normal(7).astype(np.float32)
    opt.step(p32, rng.standard_normal(7).astype(np.float32))
    assert all(buf.dtype == np.float32 for buf in opt.state.values())
    with pytest.raises(ValueError, match="shape"):
        opt.step(np.zeros(8, np.float32), np.zeros(8, np.float32))
    with pytest.raises(ValueError, match="dtype"):
        opt.step(np.zeros(7), np.zeros(7))
    opt.reset()
    assert opt.state == {} and opt.step_count == 0


@pytest.mark.parametrize("make, match", [
    (lambda: optim.SGD(lr=-0.1), "lr"),
    (lambda: optim.SGD(momentum=-0.1), "momentum"),
    (lambda: optim.SGD(weight_decay=-1), "weight_decay"),
    (lambda: optim.SGD(nesterov=True), "Nesterov"),
    (lambda: optim.SGD(momentum=0.9, dampening=0.1, nesterov=True), "Nesterov"),
    (lambda: optim.Adagrad(lr_decay=-1), "lr_decay"),
    (lambda: optim.Adagrad(initial_accumulator_value=-1), "initial_accumulator_value"),
    (lambda: optim.Adagrad(eps=0), "eps"),
    (lambda: optim.Adadelta(rho=1.5), "rho"),
    (lambda: optim.Adadelta(eps=-1e-6), "eps"),
    (lambda: optim.RMSprop(alpha=-0.5), "alpha"),
    (lambda: optim.RMSprop(momentum=-0.5), "momentum"),
    (lambda: optim.Adam(betas=(1.0, 0.999)), r"betas\[0\]"),
    (lambda: optim.Adam(betas=(0.9, -0.1)), r"betas\[1\]"),
    (lambda: optim.Adam(betas=0.9), "betas"),
    (lambda: optim.Adam(eps=0.0), "eps"),
    (lambda: optim.AdamW(weight_decay=-0.01), "weight_decay"),
    (lambda: optim.Adam(lr=math.nan), "lr"),
    (lambda: optim.Adam(lr=math.inf), "lr"),
    (lambda: optim.Adam(backend="torch"), "backend"),
    (lambda: optim.NAdam(momentum_decay=-1e-3), "momentum_decay"),
    (lambda: optim.NAdam(betas=(0.9, 1.0)), r"betas\[1\]"),
    (lambda: optim.Adamax(eps=0.0), "eps"),
    (lambda: optim.RAdam(betas=(-0.1, 0.999)), r"betas\[0\]"),
    (lambda: optim.RAdam(weight_decay=-1), "weight_decay"),
    (lambda: optim.Rprop(lr=-1), "lr"),
    (lambda: optim.Rprop(etas=(1.0, 1.2)), r"etas\[0\]"),
    (lambda: optim.Rprop(etas=(0.5, 1.0)), r"etas\[1\]"),
    (lambda: optim.Rprop(etas=0.5), "etas"),
    (lambda: optim.Rprop(step_sizes=(-1e-6, 50)), r"step_sizes\[0\]"),
    (lambda: optim.Rprop(step_sizes=(1.0, 0.5)), r"step_sizes\[1\]"),
])
def test_invalid_hyperparameters_are_rejected_at_construction(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_step_rejects_bad_buffers(rng):
    opt = optim.Adam()
    with pytest.raises(TypeError, match="params"):
        opt.step([1.0, 2.0], np.zeros(2))
    with pytest.raises(ValueError, match="params"):
        opt.step(np.zeros((2, 2)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="grads"):
        opt.step(np.zeros(3), np.zeros(4))


# ---- NAdam, Adamax, RAdam and Rprop wherever an optimizer is used ----------------------

NEW = [(optim.NAdam, dict(lr=0.01, weight_decay=0.01, decoupled_weight_decay=True)),
       (optim.Adamax, dict(lr=0.01, weight_decay=0.01)),
       (optim.RAdam, dict(lr=0.01, betas=(0.8, 0.9))),
       (optim.Rprop, dict(lr=0.01, step_sizes=(1e-4, 0.5)))]
NEW_IDS = [cls.__name__ for cls, _ in NEW]


def _warmup():
    return gd.schedules.LinearWarmup(total_iters=10, start_factor=0.2)     # per step


@pytest.mark.parametrize("cls, options", NEW, ids=NEW_IDS)
def test_fit_saved_loaded_or_pickled_mid_training_resumes_bitwise(cls, options, tmp_path):
    """The native epoch loop with a per-step schedule (the rates and NAdam's products
    enter the per-step scalars), interrupted by gd.save / gd.load or a pickle, continues
    exactly as one run."""
    X, y = gd.datasets.spirals(n_samples=90)
    kwargs = dict(batch_size=16, progress=False)
    straight = gd.MLP([2, 12, 3], seed=4)
    straight.fit(X, y, epochs=6, optimizer=cls(**options), lr_schedule=_warmup(), **kwargs)
    first = gd.MLP([2, 12, 3], seed=4)
    first.fit(X, y, epochs=3, optimizer=cls(**options), lr_schedule=_warmup(), **kwargs)
    first.save(tmp_path / "run.npz")
    loaded = gd.load(tmp_path / "run.npz")
    pickled = pickle.loads(pickle.dumps(first))
    assert type(loaded.optimizer) is cls
    assert loaded.optimizer.hyperparameters == first.optimizer.hyperparameters
    assert loaded.optimizer.step_count == first.optimizer.step_count == 18
    for net in (loaded, pickled, first):
        net.fit(X, y, epochs=3, **kwargs)
        np.testing.assert_array_equal(net.params, straight.params)
        for key, buf in straight.optimizer.state.items():
            np.testing.assert_array_equal(net.optimizer.state[key], buf, err_msg=key)


@pytest.mark.parametrize("cls, options", NEW, ids=NEW_IDS)
def test_fit_native_matches_the_reference_backend(cls, options, dtype):
    X, y = gd.datasets.spirals(n_samples=90)
    nets = []
    for backend in ("native", "reference"):
        net = gd.MLP([2, 12, 3], seed=4, dtype=np.dtype(dtype).name, backend=backend)
        net.fit(X.astype(dtype), y, epochs=3, batch_size=16, progress=False,
                optimizer=cls(**options, backend=backend), lr_schedule=_warmup())
        nets.append(net)
    rtol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(nets[0].params, nets[1].params, rtol=rtol, atol=rtol)
    assert nets[0].optimizer.step_count == nets[1].optimizer.step_count == 18


@pytest.mark.parametrize("cls, options", NEW, ids=NEW_IDS)
def test_snapshot_and_restore_replay_the_same_steps(cls, options, rng):
    opt = cls(**options)
    params = rng.standard_normal(20)
    for _ in range(5):
        opt.step(params, rng.standard_normal(20))
    snapshot, saved = opt.snapshot(), params.copy()
    grads = [rng.standard_normal(20) for _ in range(4)]
    for g in grads:
        opt.step(params, g)
    after = params.copy()
    opt.restore(snapshot)
    params[...] = saved
    assert opt.step_count == 5
    for g in grads:
        opt.step(params, g)
    np.testing.assert_array_equal(params, after)


def test_nadam_mu_product_is_the_running_product_in_any_order():
    opt = optim.NAdam(momentum_decay=0.05)
    expected = [1.0]
    for t in range(1, 12):
        expected.append(expected[-1] * (0.9 * (1 - 0.5 * 0.96 ** (t * 0.05))))
    # forwards, backwards (a restore) and forwards again: always the same product
    for steps in (3, 11, 2, 7, 0, 11):
        assert opt.mu_product(steps) == expected[steps]
    assert nadam_mu_product(0.9, 0.05, 11) == expected[11]
    assert nadam_mu_product(0.9, 0.05, 11, 4, expected[4]) == expected[11]
    # the update with mu_product=None computes the same product from the step number
    params = np.linspace(-1, 1, 9)
    a, b = params.copy(), params.copy()
    sa, sb = (reference.optimizer_state("nadam", params) for _ in range(2))
    kernels.nadam_update(a, params, **sa, step=8, momentum_decay=0.05)
    kernels.nadam_update(b, params, **sb, step=8, momentum_decay=0.05, mu_product=expected[7])
    np.testing.assert_array_equal(a, b)


def test_rprop_lr_is_only_the_initial_step_size(rng):
    params, g1, g2 = (rng.standard_normal(10) for _ in range(3))
    a, b = optim.Rprop(lr=0.1), optim.Rprop(lr=0.1)
    pa, pb = params.copy(), params.copy()
    a.step(pa, g1)
    b.step(pb, g1)
    np.testing.assert_array_equal(pa, params - 0.1 * np.sign(g1))
    b.lr = 5.0                                     # as in PyTorch: no effect any more
    a.step(pa, g2)
    b.step(pb, g2)
    np.testing.assert_array_equal(pa, pb)


@pytest.mark.parametrize("cls, options", NEW, ids=NEW_IDS)
def test_new_optimizers_as_the_solver_of_the_sklearn_estimators(cls, options):
    from gdcore.sklearn import MLPClassifier
    X, y = gd.datasets.spirals(n_samples=120)
    opt = cls(**options)
    clf = MLPClassifier(hidden_layer_sizes=(8,), solver=opt, batch_size=40, max_iter=3,
                        random_state=0).fit(X, y)
    assert opt.step_count == 0 and opt.state == {}      # the instance is not trained
    assert type(clf._optimizer) is cls and clf._optimizer.step_count == 9
    assert clf._optimizer.hyperparameters == opt.hyperparameters
    assert clf.loss_curve_[-1] < clf.loss_curve_[0]


@pytest.mark.parametrize("backend", ["native", "reference"])
@pytest.mark.parametrize("name, kwargs, match", [
    ("nadam_update", dict(momentum_decay=-1.0), "momentum_decay"),
    ("nadam_update", dict(mu_product=1.5), "mu_product"),
    ("nadam_update", dict(betas=(0.9,)), "betas"),
    ("nadam_update", dict(exp_avg_sq=np.zeros(4)), "exp_avg_sq"),
    ("adamax_update", dict(eps=0.0), "eps"),
    ("adamax_update", dict(exp_inf=np.zeros(5, np.float32)), "exp_inf"),
    ("radam_update", dict(lr=math.nan), "lr"),
    ("radam_update", dict(step=0), "step"),
    ("rprop_update", dict(etas=(0.5, 0.9)), r"etas\[1\]"),
    ("rprop_update", dict(etas=[0.5]), "etas"),
    ("rprop_update", dict(step_sizes=(0.1, 0.01)), r"step_sizes\[1\]"),
    ("rprop_update", dict(step_size=None), "step_size"),
])
def test_new_updates_reject_bad_arguments_before_writing(backend, name, kwargs, match):
    update = getattr(kernels if backend == "native" else reference, name)
    params, grads = np.ones(5), np.full(5, 0.5)
    state = reference.optimizer_state(name[: -len("_update")], params)
    for buf in state.values():
        buf += 0.25
    state.update({k: val for k, val in kwargs.items() if k in state})
    kwargs = {k: val for k, val in kwargs.items() if k not in state}
    if name != "rprop_update":
        kwargs.setdefault("step", 1)
    before = {k: (None if buf is None else buf.copy()) for k, buf in state.items()}
    with pytest.raises((TypeError, ValueError), match=match):
        update(params, grads, **state, **kwargs)
    np.testing.assert_array_equal(params, np.ones(5))
    for key, buf in state.items():
        if buf is not None and before[key] is not None:
            np.testing.assert_array_equal(buf, before[key])


# ---- the interface for code that runs the update itself ------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_prepare_allocates_the_state_once_and_checks_it_fits(dtype):
    opt = optim.Adam(amsgrad=True)
    params = np.zeros(5, dtype=dtype)
    state = opt.prepare(params)
    assert list(state) == ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"]
    assert all(buf.dtype == dtype and buf.shape == (5,) for buf in state.values())
    assert opt.prepare(params)["exp_avg"] is state["exp_avg"]      # kept, not re-made
    assert opt.step_count == 0
    with pytest.raises(TypeError):
        state["exp_avg"] = np.zeros(5, dtype=dtype)                  # read-only mapping
    with pytest.raises(ValueError, match="shape"):
        opt.prepare(np.zeros(6, dtype=dtype))


def test_kernel_arguments_drive_the_kernel_as_step_does():
    rng = np.random.default_rng(0)
    p1, g = rng.normal(size=7), rng.normal(size=7)
    p2 = p1.copy()
    a = optim.Adagrad(lr=0.1, lr_decay=0.5, initial_accumulator_value=0.25)
    b = optim.Adagrad(lr=0.1, lr_decay=0.5, initial_accumulator_value=0.25)
    a.step(p1, g)
    a.step(p1, g)
    for step in (1, 2):
        kwargs = b.kernel_arguments(step)
        assert kwargs == {"lr": 0.1, "lr_decay": 0.5, "weight_decay": 0.0, "eps": 1e-10,
                          "step": step}
        getattr(reference, b.kernel)(p2, g, **b.prepare(p2), **kwargs)
    np.testing.assert_array_equal(p1, p2)
    assert "step" not in optim.RMSprop().kernel_arguments(3)       # RMSprop has no step
