"""The optimizer updates of ``gdcore.reference`` against a hand computation.

Each ``hand_*`` function below is the update rule of torch.optim's documented
algorithm (single-tensor path), written per element over Python floats, with no NumPy
in the arithmetic.  Three consecutive steps with a gradient that changes every step are
compared: the parameters and every state buffer after each step, and the gradient,
which must not change.
"""
import inspect
import math

import numpy as np
import pytest

import gdcore.reference as ref

# torch.optim's defaults, written out independently of gdcore.
TORCH_DEFAULTS = {
    "sgd": dict(lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False),
    "adagrad": dict(lr=1e-2, lr_decay=0.0, weight_decay=0.0, eps=1e-10,
                    initial_accumulator_value=0.0),
    "adadelta": dict(lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0),
    "rmsprop": dict(lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                    centered=False),
    "adam": dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False),
    "adamw": dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False),
    "nadam": dict(lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                  momentum_decay=4e-3, decoupled_weight_decay=False),
    "adamax": dict(lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0),
    "radam": dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                  decoupled_weight_decay=False),
    "rprop": dict(lr=1e-2, etas=(0.5, 1.2), step_sizes=(1e-6, 50)),
}
# Options that shape the state (arguments of optimizer_state) rather than the step.
STATE_OPTIONS = ("momentum", "centered", "amsgrad", "initial_accumulator_value")
STEPPED = ("sgd", "adagrad", "adam", "adamw", "nadam", "adamax", "radam")  # take the step


def state_only(name):
    """Options that only fill the initial state (Rprop's lr is its initial step size)."""
    return ("initial_accumulator_value",) + (("lr",) if name == "rprop" else ())


# --- the hand computation -----------------------------------------------------------

def hand_state(name, n, hp):
    zeros = lambda: [0.0] * n  # noqa: E731
    if name == "sgd":
        return {"momentum_buffer": zeros()} if hp["momentum"] != 0 else {}
    if name == "adagrad":
        return {"state_sum": [float(hp["initial_accumulator_value"])] * n}
    if name == "adadelta":
        return {"square_avg": zeros(), "acc_delta": zeros()}
    if name == "rmsprop":
        state = {"square_avg": zeros()}
        if hp["momentum"] > 0:
            state["momentum_buffer"] = zeros()
        if hp["centered"]:
            state["grad_avg"] = zeros()
        return state
    if name == "adamax":
        return {"exp_avg": zeros(), "exp_inf": zeros()}
    if name == "rprop":
        return {"prev": zeros(), "step_size": [float(hp["lr"])] * n}
    state = {"exp_avg": zeros(), "exp_avg_sq": zeros()}
    if hp.get("amsgrad"):
        state["max_exp_avg_sq"] = zeros()
    return state


def hand_sgd(p, grad, s, t, hp):
    lr, mu, damp, wd = hp["lr"], hp["momentum"], hp["dampening"], hp["weight_decay"]
    for i in range(len(p)):
        g = grad[i] + wd * p[i]
        if mu != 0:
            b = s["momentum_buffer"]
            b[i] = g if t == 1 else mu * b[i] + (1 - damp) * g
            g = g + mu * b[i] if hp["nesterov"] else b[i]
        p[i] = p[i] - lr * g


def hand_adagrad(p, grad, s, t, hp):
    clr = hp["lr"] / (1 + (t - 1) * hp["lr_decay"])
    acc = s["state_sum"]
    for i in range(len(p)):
        g = grad[i] + hp["weight_decay"] * p[i]
        acc[i] = acc[i] + g * g
        p[i] = p[i] - clr * g / (math.sqrt(acc[i]) + hp["eps"])


def hand_adadelta(p, grad, s, t, hp):
    rho, eps = hp["rho"], hp["eps"]
    v, u = s["square_avg"], s["acc_delta"]
    for i in range(len(p)):
        g = grad[i] + hp["weight_decay"] * p[i]
        v[i] = rho * v[i] + (1 - rho) * g * g
        delta = math.sqrt(u[i] + eps) / math.sqrt(v[i] + eps) * g
        u[i] = rho * u[i] + (1 - rho) * delta * delta
        p[i] = p[i] - hp["lr"] * delta


def hand_rmsprop(p, grad, s, t, hp):
    alpha, eps, mu = hp["alpha"], hp["eps"], hp["momentum"]
    v = s["square_avg"]
    for i in range(len(p)):
        g = grad[i] + hp["weight_decay"] * p[i]
        v[i] = alpha * v[i] + (1 - alpha) * g * g
        if hp["centered"]:
            m = s["grad_avg"]
            m[i] = alpha * m[i] + (1 - alpha) * g
            avg = math.sqrt(v[i] - m[i] * m[i]) + eps
        else:
            avg = math.sqrt(v[i]) + eps
        if mu > 0:
            b = s["momentum_buffer"]
            b[i] = mu * b[i] + g / avg
            p[i] = p[i] - hp["lr"] * b[i]
        else:
            p[i] = p[i] - hp["lr"] * g / avg


def _hand_adam(p, grad, s, t, hp, decoupled):
    lr, wd, eps = hp["lr"], hp["weight_decay"], hp["eps"]
    beta1, beta2 = hp["betas"]
    m, v = s["exp_avg"], s["exp_avg_sq"]
    for i in range(len(p)):
        g = grad[i]
        if decoupled:
            p[i] = p[i] * (1 - lr * wd)
        else:
            g = g + wd * p[i]
        m[i] = beta1 * m[i] + (1 - beta1) * g
        v[i] = beta2 * v[i] + (1 - beta2) * g * g
        m_hat = m[i] / (1 - beta1 ** t)
        if hp["amsgrad"]:
            # torch keeps the maximum of the raw second moment, then corrects it.
            s["max_exp_avg_sq"][i] = max(s["max_exp_avg_sq"][i], v[i])
            v_hat = s["max_exp_avg_sq"][i] / (1 - beta2 ** t)
        else:
            v_hat = v[i] / (1 - beta2 ** t)
        p[i] = p[i] - lr * m_hat / (math.sqrt(v_hat) + eps)


def hand_adam(p, grad, s, t, hp):
    _hand_adam(p, grad, s, t, hp, decoupled=False)


def hand_adamw(p, grad, s, t, hp):
    _hand_adam(p, grad, s, t, hp, decoupled=True)


def _hand_decay(p, g, i, hp):
    """The Adam family's weight decay of element i: the gradient to use."""
    if hp.get("decoupled_weight_decay"):
        p[i] = p[i] * (1 - hp["lr"] * hp["weight_decay"])
        return g
    return g + hp["weight_decay"] * p[i]


def hand_nadam(p, grad, s, t, hp):
    lr, (beta1, beta2), eps, psi = hp["lr"], hp["betas"], hp["eps"], hp["momentum_decay"]
    mu = [beta1 * (1 - 0.5 * 0.96 ** (k * psi)) for k in range(1, t + 2)]
    product = math.prod(mu[:t])                     # mu_1 ... mu_t
    m, v = s["exp_avg"], s["exp_avg_sq"]
    for i in range(len(p)):
        g = _hand_decay(p, grad[i], i, hp)
        m[i] = beta1 * m[i] + (1 - beta1) * g
        v[i] = beta2 * v[i] + (1 - beta2) * g * g
        denom = math.sqrt(v[i] / (1 - beta2 ** t)) + eps
        p[i] = (p[i] - lr * (1 - mu[t - 1]) / (1 - product) * g / denom
                - lr * mu[t] / (1 - product * mu[t]) * m[i] / denom)


def hand_adamax(p, grad, s, t, hp):
    lr, (beta1, beta2), eps, wd = hp["lr"], hp["betas"], hp["eps"], hp["weight_decay"]
    m, u = s["exp_avg"], s["exp_inf"]
    for i in range(len(p)):
        g = grad[i] + wd * p[i]
        m[i] = beta1 * m[i] + (1 - beta1) * g
        u[i] = max(beta2 * u[i], abs(g) + eps)
        p[i] = p[i] - lr / (1 - beta1 ** t) * m[i] / u[i]


def hand_radam(p, grad, s, t, hp):
    lr, (beta1, beta2), eps = hp["lr"], hp["betas"], hp["eps"]
    rho_inf = 2 / (1 - beta2) - 1
    rho_t = rho_inf - 2 * t * beta2 ** t / (1 - beta2 ** t)
    m, v = s["exp_avg"], s["exp_avg_sq"]
    for i in range(len(p)):
        g = _hand_decay(p, grad[i], i, hp)
        m[i] = beta1 * m[i] + (1 - beta1) * g
        v[i] = beta2 * v[i] + (1 - beta2) * g * g
        m_hat = m[i] / (1 - beta1 ** t)
        if rho_t > 5:
            r = math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf
                          / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
            adaptive = math.sqrt(1 - beta2 ** t) / (math.sqrt(v[i]) + eps)
            p[i] = p[i] - lr * m_hat * adaptive * r
        else:
            p[i] = p[i] - lr * m_hat


def hand_rprop(p, grad, s, t, hp):
    (etaminus, etaplus), (low, high) = hp["etas"], hp["step_sizes"]
    prev, size = s["prev"], s["step_size"]
    for i in range(len(p)):
        g = grad[i]
        if g * prev[i] > 0:
            size[i] = min(size[i] * etaplus, high)
        elif g * prev[i] < 0:
            size[i] = max(size[i] * etaminus, low)
            g = 0.0                       # a sign change: no move, forget the gradient
        else:
            size[i] = min(max(size[i], low), high)
        p[i] = p[i] - math.copysign(size[i], g) if g != 0 else p[i]
        prev[i] = g


HAND = {"sgd": hand_sgd, "adagrad": hand_adagrad, "adadelta": hand_adadelta,
        "rmsprop": hand_rmsprop, "adam": hand_adam, "adamw": hand_adamw,
        "nadam": hand_nadam, "adamax": hand_adamax, "radam": hand_radam, "rprop": hand_rprop}


# --- the problem ----------------------------------------------------------------------

N_PARAMS = 9


def problem():
    """Initial parameters and three gradients.  Each element's gradient changes every
    step; element 3 flips sign, element 8 is always 0, and the magnitudes both grow
    and shrink (so that amsgrad's maximum matters)."""
    rng = np.random.default_rng(20240601)
    p0 = rng.uniform(-1.5, 1.5, N_PARAMS)
    signs = np.array([1, -1, 1, 1, -1, 1, -1, 1, 1], dtype=np.float64)
    G = signs * rng.uniform(0.1, 2.0, size=(3, N_PARAMS))
    G[:, 3] = [0.8, -0.5, 0.3]
    G[:, 4] = [-2.0, -0.2, -0.05]
    G[:, 5] = [0.1, 0.4, 1.6]
    G[:, 8] = 0.0
    return p0, G


CASES = {
    "sgd": [
        {}, dict(lr=0.1), dict(lr=0.1, momentum=0.9), dict(lr=0.1, momentum=0.9, dampening=0.3),
        dict(lr=0.1, momentum=0.9, nesterov=True), dict(lr=0.1, weight_decay=0.2),
        dict(lr=0.05, momentum=0.5, dampening=0.5, weight_decay=0.1),
        dict(lr=0.05, momentum=0.8, weight_decay=0.1, nesterov=True),
    ],
    "adagrad": [
        {}, dict(lr=0.1), dict(lr=0.1, lr_decay=0.5), dict(lr=0.1, initial_accumulator_value=0.3),
        dict(lr=0.1, weight_decay=0.2), dict(lr=0.1, eps=0.1),
        dict(lr=0.2, lr_decay=0.1, weight_decay=0.1, eps=1e-3, initial_accumulator_value=0.05),
    ],
    "adadelta": [
        {}, dict(rho=0.5), dict(eps=1e-2), dict(weight_decay=0.2), dict(lr=0.5),
        dict(lr=0.7, rho=0.6, eps=1e-3, weight_decay=0.1),
    ],
    "rmsprop": [
        {}, dict(alpha=0.5), dict(eps=0.1), dict(momentum=0.9), dict(centered=True),
        dict(alpha=0.5, centered=True), dict(momentum=0.9, centered=True),
        dict(weight_decay=0.2), dict(lr=0.05, alpha=0.7, eps=1e-3, weight_decay=0.1,
                                     momentum=0.5, centered=True),
    ],
    "adam": [
        {}, dict(lr=0.1), dict(betas=(0.8, 0.9)), dict(betas=(0.3, 0.6)), dict(eps=0.1),
        dict(weight_decay=0.2), dict(betas=(0.8, 0.9), amsgrad=True),
        dict(lr=0.05, betas=(0.5, 0.7), eps=1e-3, weight_decay=0.1, amsgrad=True),
    ],
    "adamw": [
        {}, dict(lr=0.1, weight_decay=0.2), dict(weight_decay=0.0), dict(betas=(0.3, 0.6)),
        dict(betas=(0.8, 0.9), amsgrad=True), dict(eps=0.1),
        dict(lr=0.05, betas=(0.5, 0.7), eps=1e-3, weight_decay=0.3, amsgrad=True),
    ],
    "nadam": [
        {}, dict(lr=0.1, momentum_decay=0.3), dict(betas=(0.3, 0.6)), dict(eps=0.1),
        dict(lr=0.1, weight_decay=0.2), dict(lr=0.1, weight_decay=0.2, decoupled_weight_decay=True),
    ],
    "adamax": [
        {}, dict(lr=0.1, betas=(0.3, 0.6)), dict(eps=0.5), dict(lr=0.1, weight_decay=0.2),
    ],
    "radam": [
        {}, dict(lr=0.1, betas=(0.3, 0.6)), dict(lr=0.1, weight_decay=0.2),
        dict(lr=0.1, weight_decay=0.2, decoupled_weight_decay=True),
    ],
    "rprop": [
        {}, dict(lr=0.1, etas=(0.3, 1.5)), dict(lr=0.1, step_sizes=(0.08, 0.12)),
    ],
}
CASE_PARAMS = [pytest.param(name, opts, id=f"{name}-" + ("-".join(
    f"{k}={v}" for k, v in opts.items()) or "defaults"))
    for name, cases in CASES.items() for opts in cases]


def reference_step(name, params, grads, state, step, options):
    kwargs = {k: v for k, v in options.items() if k not in state_only(name)}
    if name in STEPPED:
        kwargs["step"] = step
    return getattr(ref, f"{name}_update")(params, grads, **state, **kwargs)


def run_hand(name, p0, G, options, n_steps=3):
    hp = {**TORCH_DEFAULTS[name], **options}
    p, s = [float(x) for x in p0], hand_state(name, len(p0), hp)
    history = []
    for t in range(1, n_steps + 1):
        HAND[name](p, [float(g) for g in G[t - 1]], s, t, hp)
        history.append((list(p), {k: list(b) for k, b in s.items()}))
    return history


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-14), (np.float32, 1e-6)],
                         ids=["float64", "float32"])
@pytest.mark.parametrize("name, options", CASE_PARAMS)
def test_three_steps_match_hand_computation(name, options, dtype, rtol):
    p0, G = problem()
    params = p0.astype(dtype)
    G = G.astype(dtype)
    # The hand computation starts from the values the reference actually holds.
    expected = run_hand(name, params, G, options)

    state_options = {k: v for k, v in options.items()
                     if k in STATE_OPTIONS or k in state_only(name)}
    state = ref.optimizer_state(name, params, **state_options)
    initial = hand_state(name, N_PARAMS, {**TORCH_DEFAULTS[name], **options})
    assert sorted(state) == sorted(initial)
    for key, buf in state.items():
        assert buf.dtype == dtype
        np.testing.assert_array_equal(buf, np.array(initial[key], dtype=dtype), err_msg=key)

    for step in (1, 2, 3):
        grads = G[step - 1].copy()
        result = reference_step(name, params, grads, state, step, options)
        assert result is params
        assert params.dtype == dtype
        np.testing.assert_array_equal(grads, G[step - 1])
        p_expected, s_expected = expected[step - 1]
        np.testing.assert_allclose(params, p_expected, rtol=rtol, atol=0,
                                   err_msg=f"params after step {step}")
        assert sorted(state) == sorted(s_expected)
        for key, buf in state.items():
            assert buf.dtype == dtype and buf.shape == (N_PARAMS,)
            np.testing.assert_allclose(buf, s_expected[key], rtol=rtol, atol=0,
                                       err_msg=f"{key} after step {step}")


@pytest.mark.parametrize("name, options, variant", [
    # eps outside the square root, not inside.
    ("adagrad", dict(lr=0.1, eps=0.1), "eps_inside"),
    ("rmsprop", dict(eps=0.1), "eps_inside"),
    # eps after the bias correction, not before.
    ("adam", dict(eps=0.1), "eps_before_correction"),
    # amsgrad: the maximum of the raw second moment, not of the corrected one.
    ("adam", dict(betas=(0.8, 0.9), amsgrad=True), "max_of_corrected"),
    # AdamW decays the parameters before the step, not the gradient.
    ("adamw", dict(lr=0.1, weight_decay=0.2), "coupled"),
    # SGD's momentum buffer starts as the first gradient, not as (1 - dampening) g.
    ("sgd", dict(lr=0.1, momentum=0.9, dampening=0.3), "buffer_from_zero"),
])
def test_the_cases_discriminate_the_usual_mistakes(name, options, variant):
    """Guards the hand computation: each listed option, computed the usual wrong way,
    lands far outside the tolerance of the test above."""
    p0, G = problem()
    right = np.array(run_hand(name, p0, G, options)[-1][0])
    hp = {**TORCH_DEFAULTS[name], **options}
    p = list(p0)
    if variant == "eps_inside":
        key = "state_sum" if name == "adagrad" else "square_avg"
        s = hand_state(name, N_PARAMS, hp)
        for t in (1, 2, 3):
            # eps moved under the root: sqrt(s + eps^2) ~ sqrt(s) + eps only for s >> eps^2.
            g = list(G[t - 1])
            if name == "adagrad":
                for i in range(N_PARAMS):
                    s[key][i] += g[i] ** 2
                    p[i] -= hp["lr"] * g[i] / math.sqrt(s[key][i] + hp["eps"])
            else:
                for i in range(N_PARAMS):
                    s[key][i] = hp["alpha"] * s[key][i] + (1 - hp["alpha"]) * g[i] ** 2
                    p[i] -= hp["lr"] * g[i] / math.sqrt(s[key][i] + hp["eps"])
        wrong = np.array(p)
    elif variant == "eps_before_correction":
        wrong = np.array(run_hand(name, p0, G, dict(options, eps=options["eps"] / math.sqrt(
            1 - 0.999 ** 3)))[-1][0])
    elif variant == "max_of_corrected":
        beta1, beta2 = hp["betas"]
        m, v, vmax = [0.0] * N_PARAMS, [0.0] * N_PARAMS, [0.0] * N_PARAMS
        for t in (1, 2, 3):
            for i in range(N_PARAMS):
                g = G[t - 1][i]
                m[i] = beta1 * m[i] + (1 - beta1) * g
                v[i] = beta2 * v[i] + (1 - beta2) * g * g
                vmax[i] = max(vmax[i], v[i] / (1 - beta2 ** t))
                p[i] -= hp["lr"] * m[i] / (1 - beta1 ** t) / (math.sqrt(vmax[i]) + hp["eps"])
        wrong = np.array(p)
    elif variant == "coupled":
        wrong = np.array(run_hand("adam", p0, G, options)[-1][0])
    else:
        mu, damp = hp["momentum"], hp["dampening"]
        b = [0.0] * N_PARAMS
        for t in (1, 2, 3):
            for i in range(N_PARAMS):
                b[i] = mu * b[i] + (1 - damp) * G[t - 1][i]
                p[i] -= hp["lr"] * b[i]
        wrong = np.array(p)
    assert np.max(np.abs(wrong - right) / np.abs(right)) > 1e-5


def test_adam_with_amsgrad_differs_from_adam_on_shrinking_gradients():
    p0, G = problem()
    results = []
    for amsgrad in (False, True):
        params = p0.copy()
        state = ref.optimizer_state("adam", params, amsgrad=amsgrad)
        for step in (1, 2, 3):
            ref.adam_update(params, G[step - 1], **state, step=step, betas=(0.8, 0.9),
                            amsgrad=amsgrad)
        results.append(params)
        if amsgrad:
            # The maximum of the raw second moment: never below the running average.
            assert np.all(state["max_exp_avg_sq"] >= state["exp_avg_sq"])
            assert np.any(state["max_exp_avg_sq"] > state["exp_avg_sq"])
    assert not np.allclose(results[0], results[1], rtol=1e-6, atol=0)


# --- optimizer_state ------------------------------------------------------------------

@pytest.mark.parametrize("name, options, keys", [
    ("sgd", {}, []),
    ("sgd", dict(momentum=0.9), ["momentum_buffer"]),
    ("adagrad", {}, ["state_sum"]),
    ("adagrad", dict(initial_accumulator_value=0.25), ["state_sum"]),
    ("adadelta", {}, ["square_avg", "acc_delta"]),
    ("rmsprop", {}, ["square_avg"]),
    ("rmsprop", dict(momentum=0.9), ["square_avg", "momentum_buffer"]),
    ("rmsprop", dict(centered=True), ["square_avg", "grad_avg"]),
    ("rmsprop", dict(momentum=0.5, centered=True), ["square_avg", "momentum_buffer", "grad_avg"]),
    ("adam", {}, ["exp_avg", "exp_avg_sq"]),
    ("adam", dict(amsgrad=True), ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"]),
    ("adamw", {}, ["exp_avg", "exp_avg_sq"]),
    ("adamw", dict(amsgrad=True), ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"]),
    ("nadam", {}, ["exp_avg", "exp_avg_sq"]),
    ("nadam", dict(amsgrad=True), ["exp_avg", "exp_avg_sq"]),      # no amsgrad in NAdam
    ("adamax", {}, ["exp_avg", "exp_inf"]),
    ("radam", {}, ["exp_avg", "exp_avg_sq"]),
    ("rprop", {}, ["prev", "step_size"]),
    ("rprop", dict(lr=0.25), ["prev", "step_size"]),
])
@pytest.mark.parametrize("size", [0, 1, 5])
def test_optimizer_state_buffers(name, options, keys, size, dtype):
    params = np.linspace(-1, 1, size).astype(dtype)
    before = params.copy()
    state = ref.optimizer_state(name, params, **options)
    assert sorted(state) == sorted(keys)
    fills = {"state_sum": options.get("initial_accumulator_value", 0.0),
             "step_size": options.get("lr", 1e-2)}
    buffers = list(state.values())
    for key, buf in state.items():
        assert isinstance(buf, np.ndarray)
        assert buf.dtype == dtype and buf.shape == (size,)
        assert buf.flags.c_contiguous and buf.flags.writeable
        np.testing.assert_array_equal(buf, np.full(size, fills.get(key, 0.0), dtype))
        assert not np.shares_memory(buf, params)
    for i, a in enumerate(buffers):
        for b in buffers[i + 1:]:
            assert not np.shares_memory(a, b)
    np.testing.assert_array_equal(params, before)
    # The state is exactly what the update takes.
    update = inspect.signature(getattr(ref, f"{name}_update")).parameters
    assert all(key in update for key in keys)


@pytest.mark.parametrize("name", list(TORCH_DEFAULTS))
def test_defaults_are_torch_optim_defaults(name):
    update = inspect.signature(getattr(ref, f"{name}_update")).parameters
    state = inspect.signature(ref.optimizer_state).parameters
    for key, default in TORCH_DEFAULTS[name].items():
        if key in STATE_OPTIONS or key in state_only(name):
            assert state[key].default == default, f"optimizer_state {key}"
        if key not in state_only(name):
            assert update[key].default == default, f"{name}_update {key}"
    # Hyperparameters are keyword-only; the state may be passed by position.
    for key in TORCH_DEFAULTS[name]:
        if key in update:
            assert update[key].kind is inspect.Parameter.KEYWORD_ONLY, key
    if name in STEPPED:
        assert update["step"].kind is inspect.Parameter.KEYWORD_ONLY
        assert update["step"].default is inspect.Parameter.empty
    assert update["n_threads"].default is None


@pytest.mark.parametrize("name", list(TORCH_DEFAULTS))
def test_update_of_an_empty_buffer(name):
    params = np.zeros(0)
    state = ref.optimizer_state(name, params)
    kwargs = {"step": 1} if name in STEPPED else {}
    assert getattr(ref, f"{name}_update")(params, np.zeros(0), **state, **kwargs) is params


def test_sgd_without_momentum_needs_no_buffer():
    p0, G = problem()
    params = p0.copy()
    ref.sgd_update(params, G[0], step=1, lr=0.5)
    np.testing.assert_allclose(params, p0 - 0.5 * G[0], rtol=1e-15)


@pytest.mark.parametrize("options", [dict(betas=(0.8, 0.9)),
                                     dict(lr=0.1, weight_decay=0.2, decoupled_weight_decay=True)])
def test_radam_rectified_steps_match_hand_computation(options):
    """Steps 6 to 8, where rho_t > 5 switches RAdam's variance rectification on (with
    beta2 = 0.9 from step 6; with the default 0.999 also from step 6)."""
    p0, G = problem()
    G = np.concatenate([G, -0.7 * G[::-1], 1.3 * G[:2]])
    expected = run_hand("radam", p0, G, options, n_steps=8)
    params = p0.copy()
    state = ref.optimizer_state("radam", params)
    for step in range(1, 9):
        reference_step("radam", params, G[step - 1], state, step, options)
        np.testing.assert_allclose(params, expected[step - 1][0], rtol=1e-13, atol=0,
                                   err_msg=f"params after step {step}")
    hp = {**TORCH_DEFAULTS["radam"], **options}
    beta2 = hp["betas"][1]
    rho_inf = 2 / (1 - beta2) - 1
    assert [rho_inf - 2 * t * beta2 ** t / (1 - beta2 ** t) > 5 for t in range(1, 9)] == \
        [False] * 5 + [True] * 3
