"""gdcore.optim: torch.optim semantics over flat buffers."""
import inspect
import math

import numpy as np
import pytest

import gdcore as gd
from gdcore import optim, reference

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
}


def _reference_steps(cls, options, params, grads_seq):
    """The same steps through gdcore.reference's update functions, state kept by hand."""
    name = cls.kernel[: -len("_update")]
    state_options = {k: options[k] for k in ("momentum", "centered", "amsgrad",
                                             "initial_accumulator_value") if k in options}
    state = reference.optimizer_state(name, params, **state_options)
    kwargs = {k: val for k, val in options.items() if k != "initial_accumulator_value"}
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
