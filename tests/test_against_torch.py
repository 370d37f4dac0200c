"""gdcore.optim against torch.optim, step for step, where PyTorch happens to be installed.

PyTorch is not a dependency: without it these tests are skipped.  Agreement is to
rounding (PyTorch's vectorised CPU kernels use fused multiply-add, gdcore never does).
"""
import numpy as np
import pytest

import gdcore as gd

torch = pytest.importorskip("torch")

CASES = [
    ("SGD", dict(lr=0.05)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01, weight_decay=0.01, initial_accumulator_value=0.1)),
    ("Adadelta", dict(lr=0.5, rho=0.8, weight_decay=0.01)),
    ("RMSprop", dict(lr=0.01, alpha=0.9, weight_decay=0.01)),
    ("RMSprop", dict(lr=0.01, momentum=0.5, centered=True)),
    ("Adam", dict(lr=0.01, weight_decay=0.01)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.95), amsgrad=True)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.01, weight_decay=0.1, amsgrad=True)),
]
TORCH_STATE = {"state_sum": "sum"}


@pytest.mark.parametrize("name, options", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
@pytest.mark.parametrize("backend", ["native", "reference"])
def test_ten_steps_match_torch(name, options, backend, dtype, rng):
    p0 = rng.standard_normal(1000).astype(dtype)
    grads = [rng.standard_normal(1000).astype(dtype) for _ in range(10)]
    param = torch.nn.Parameter(torch.tensor(p0.copy()))
    torch_opt = getattr(torch.optim, name)([param], foreach=False, **options)
    opt = getattr(gd.optim, name)(backend=backend, **options)
    p = p0.copy()
    for g in grads:
        param.grad = torch.tensor(g)
        torch_opt.step()
        opt.step(p, g)
    rtol = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(p, param.detach().numpy(), rtol=rtol, atol=rtol)
    state = torch_opt.state[param]
    for key, buf in opt.state.items():
        np.testing.assert_allclose(buf, state[TORCH_STATE.get(key, key)].numpy(),
                                   rtol=10 * rtol, atol=rtol)


# ---- activations and losses against torch.nn.functional -----------------------------

F = torch.nn.functional
TORCH_ACTIVATIONS = [
    ("leaky_relu", lambda u: F.leaky_relu(u)),
    (("leaky_relu", {"negative_slope": 0.2}), lambda u: F.leaky_relu(u, 0.2)),
    ("elu", lambda u: F.elu(u)),
    (("elu", {"alpha": 0.5}), lambda u: F.elu(u, 0.5)),
    ("gelu", lambda u: F.gelu(u)),
    (("gelu", {"approximate": "tanh"}), lambda u: F.gelu(u, approximate="tanh")),
    ("softplus", lambda u: F.softplus(u)),
    # threshold 15: the derivative from the output differs from torch's by at most
    # exp(-threshold) just above the threshold (see gdcore.reference.activations)
    (("softplus", {"beta": 2.0, "threshold": 15.0}), lambda u: F.softplus(u, 2.0, 15.0)),
    ("silu", lambda u: F.silu(u)),
]
TORCH_LOSSES = [
    ("huber", lambda y, t: F.huber_loss(y, t)),
    (("huber", {"delta": 0.3}), lambda y, t: F.huber_loss(y, t, delta=0.3)),
    ("mae", lambda y, t: F.l1_loss(y, t)),
    ("poisson", lambda y, t: F.poisson_nll_loss(y, t, log_input=True, full=False)),
]


def _spec_id(spec):
    return spec if isinstance(spec, str) else f"{spec[0]}-{list(spec[1].values())[0]}"


def _torch_tol(dtype):
    # torch vectorises exp/erf/tanh with its own polynomials (and fused multiply-add)
    # (float32: near saturation the slope is a difference of numbers near 1, so a few
    # ulp of 1 absolute)
    return dict(rtol=2e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("spec, fn", TORCH_ACTIVATIONS,
                         ids=[_spec_id(s) for s, _ in TORCH_ACTIVATIONS])
@pytest.mark.parametrize("backend", ["native", "reference"])
def test_activation_and_its_gradient_match_torch(spec, fn, backend, dtype, rng):
    U = rng.normal(0, 3, (41, 29)).astype(dtype)
    U[0, :8] = [0.0, -0.0, 5.0, -5.0, 7.5, 7.5000005, 30.0, -30.0]   # kinks, thresholds
    dY = rng.normal(size=U.shape).astype(dtype)
    u = torch.tensor(U, requires_grad=True)
    y = fn(u)
    y.backward(torch.tensor(dY))
    kernels = gd.kernels if backend == "native" else gd.reference
    Y = kernels.activation(spec, U)
    name = spec if isinstance(spec, str) else spec[0]
    D = kernels.activation_backward(spec, U if name in ("gelu", "silu") else Y, dY)
    np.testing.assert_allclose(Y, y.detach().numpy(), **_torch_tol(dtype))
    tol = _torch_tol(dtype)
    want = u.grad.numpy()
    if name == "softplus":
        # just above the threshold the slope from the output is 1, torch's
        # sigmoid(threshold) (documented): at most exp(-threshold) apart
        threshold = 20.0 if isinstance(spec, str) else spec[1]["threshold"]
        tol["atol"] = tol["atol"] + np.exp(-threshold) * np.abs(dY)
    assert np.all(np.abs(D - want) <= tol["rtol"] * np.abs(want) + tol["atol"])


@pytest.mark.parametrize("spec, fn", TORCH_LOSSES, ids=[_spec_id(s) for s, _ in TORCH_LOSSES])
@pytest.mark.parametrize("backend", ["native", "reference"])
def test_loss_and_its_gradient_match_torch(spec, fn, backend, dtype, rng):
    Y = rng.normal(0, 1.5, (300, 3)).astype(dtype)
    T = (rng.poisson(np.exp(Y)) if spec == "poisson" else rng.normal(0, 1.5, Y.shape))
    T = T.astype(dtype)
    T[::7] = Y[::7]                         # mae's and huber's gradient at y == t
    y = torch.tensor(Y, requires_grad=True)
    loss = fn(y, torch.tensor(T))
    loss.backward()
    kernels = gd.kernels if backend == "native" else gd.reference
    value, D = kernels.loss_delta(spec, Y, T)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    assert value == pytest.approx(loss.item(), rel=rtol)
    np.testing.assert_allclose(D, y.grad.numpy(), **_torch_tol(dtype))


@pytest.mark.parametrize("activation, loss", [
    (("leaky_relu", {"negative_slope": 0.2}), "mae"), ("elu", ("huber", {"delta": 0.5})),
    ("gelu", "poisson"), (("gelu", {"approximate": "tanh"}), "huber"),
    (("softplus", {"beta": 2.0, "threshold": 15.0}), "mae"), ("silu", "poisson")])
def test_network_gradient_matches_torch_autograd(activation, loss, rng):
    net = gd.MLP([5, 8, 6, 2], activation=activation, output="identity", loss=loss,
                 dtype="float64", seed=3)
    X = rng.standard_normal((25, 5))
    T = rng.poisson(1.0, (25, 2)).astype(np.float64)
    value, grad = net.gradient(X, T)
    act = next(fn for spec, fn in TORCH_ACTIVATIONS if spec == activation)
    if isinstance(loss, str):
        lossfn = next(fn for spec, fn in TORCH_LOSSES if spec == loss)
    else:
        lossfn = lambda y, t: F.huber_loss(y, t, delta=loss[1]["delta"])  # noqa: E731
    Ws = [torch.tensor(l.W, requires_grad=True) for l in net.layers]
    bs = [torch.tensor(l.b, requires_grad=True) for l in net.layers]
    h = torch.tensor(X)
    for i, (W, b) in enumerate(zip(Ws, bs)):
        h = h @ W + b
        if i < len(Ws) - 1:
            h = act(h)
    out = lossfn(h, torch.tensor(T))
    out.backward()
    want = np.concatenate([np.concatenate([W.grad.numpy().ravel(), b.grad.numpy()])
                           for W, b in zip(Ws, bs)])
    assert value == pytest.approx(out.item(), rel=1e-12)
    np.testing.assert_allclose(grad, want, rtol=1e-10, atol=1e-13)

# ---- gradient clipping and parameter groups -------------------------------------------

CLIP_CASES = [("Adam", dict(lr=0.01), dict(clip_norm=1.0)),
              ("Adam", dict(lr=0.01, weight_decay=0.01),
               dict(clip_norm=0.5, norm_type=float("inf"))),
              ("SGD", dict(lr=0.05, momentum=0.9), dict(clip_norm=2.0, norm_type=1.0)),
              ("RMSprop", dict(lr=0.01), dict(clip_value=0.5))]


@pytest.mark.parametrize("name, options, clip", CLIP_CASES,
                         ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(CLIP_CASES)])
@pytest.mark.parametrize("backend", ["native", "reference"])
def test_clipped_steps_match_torch(name, options, clip, backend, dtype, rng):
    """torch.nn.utils.clip_grad_norm_ / clip_grad_value_ then torch.optim, 20 steps."""
    p0 = rng.standard_normal(1000).astype(dtype)
    param = torch.nn.Parameter(torch.tensor(p0.copy()))
    torch_opt = getattr(torch.optim, name)([param], foreach=False, **options)
    opt = getattr(gd.optim, name)(backend=backend, **options)
    opt.set_clipping(**clip)
    p = p0.copy()
    for _ in range(20):
        g = (3 * rng.standard_normal(1000)).astype(dtype)
        param.grad = torch.tensor(g.copy())
        if "clip_norm" in clip:
            torch.nn.utils.clip_grad_norm_([param], clip["clip_norm"],
                                           norm_type=clip.get("norm_type", 2.0))
        else:
            torch.nn.utils.clip_grad_value_([param], clip["clip_value"])
        torch_opt.step()
        opt.step(p, g)
        rtol = 1e-5 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(g, param.grad.numpy(), rtol=rtol, atol=rtol * 1e-2)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(p, param.detach().numpy(), rtol=rtol, atol=rtol)


@pytest.mark.parametrize("backend", ["native", "reference"])
def test_network_groups_and_clipping_match_torch_param_groups(backend, rng):
    """An MLP's train_step with parameter groups (a frozen layer, a slower layer, no
    weight decay on biases) and clip_norm, against torch param groups over the same
    slices, clip_grad_norm_ over the parameters that are not frozen and Adam, for 20
    steps; torch gets gdcore's gradient of each step."""
    X = rng.standard_normal((16, 6))
    T = rng.integers(0, 3, 16)
    net = gd.MLP([6, 8, 5, 3], activation="tanh", loss="cross_entropy", seed=3,
                 dtype="float64", backend=backend)
    opt = gd.optim.Adam(lr=0.01, weight_decay=0.02)
    opt.set_clipping(clip_norm=0.1)
    opt.set_param_groups([{"layers": 0, "lr_factor": 0.2},
                          {"params": "biases", "weight_decay": 0.0},
                          {"layers": 2, "frozen": True}])
    pieces, groups = [], []
    for l, (w0, w1, b0, b1) in enumerate(net.param_layout[:2]):
        lr = 0.01 * (0.2 if l == 0 else 1.0)
        for s, wd in ((slice(w0, w1), 0.02), (slice(b0, b1), 0.0)):
            t = torch.nn.Parameter(torch.tensor(net.params[s].copy()))
            pieces.append((s, t))
            groups.append({"params": [t], "lr": lr, "weight_decay": wd})
    torch_opt = torch.optim.Adam(groups, foreach=False)
    frozen = net.params[net.param_layout[2][0]:].copy()
    for _ in range(20):
        _, g = net.gradient(X, T)
        for s, t in pieces:
            t.grad = torch.tensor(g[s].copy())
        torch.nn.utils.clip_grad_norm_([t for _, t in pieces], 0.1)
        torch_opt.step()
        net.train_step(X, T, opt)
        for s, t in pieces:
            np.testing.assert_allclose(net.params[s], t.detach().numpy(), rtol=1e-10,
                                       atol=1e-12)
            np.testing.assert_allclose(net.grads[s], t.grad.numpy(), rtol=1e-10, atol=1e-14)
            t.data = torch.tensor(net.params[s].copy())    # the same point for the next step
    np.testing.assert_array_equal(net.params[net.param_layout[2][0]:], frozen)


# every option of the optimizers added after the first five, over >= 50 steps
LONG_CASES = [
    ("NAdam", dict()),
    ("NAdam", dict(lr=0.01, betas=(0.8, 0.95), weight_decay=0.01, momentum_decay=0.01)),
    ("NAdam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True, eps=1e-6)),
    ("Adamax", dict()),
    ("Adamax", dict(lr=0.01, betas=(0.3, 0.8), weight_decay=0.01, eps=1e-6)),
    ("RAdam", dict()),
    ("RAdam", dict(lr=0.01, betas=(0.8, 0.9), weight_decay=0.01, eps=1e-6)),
    ("RAdam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)),
    ("Rprop", dict()),
    ("Rprop", dict(lr=0.05, etas=(0.3, 1.5), step_sizes=(1e-3, 0.1))),
]


@pytest.mark.parametrize("name, options", LONG_CASES,
                         ids=[f"{n}-{i}" for i, (n, _) in enumerate(LONG_CASES)])
@pytest.mark.parametrize("backend", ["native", "reference"])
def test_sixty_steps_match_torch(name, options, backend, dtype, rng):
    """PyTorch keeps NAdam's mu_product and every step count in its default dtype: it
    is set to the parameters' dtype here, so that float64 runs compare the update rules
    alone (to rounding: PyTorch's kernels use fused multiply-add), and float32 runs
    use PyTorch's default float32 scalars (see gdcore.optim.NAdam for that effect).
    Rprop involves no rounding beyond one product and is compared bitwise."""
    p0 = rng.standard_normal(1000).astype(dtype)
    grads = []
    for t in range(60):
        g = (rng.standard_normal(1000) * (0.1 + t % 7)).astype(dtype)
        g[t % 5::9] = 0.0
        grads.append(g)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64 if dtype == np.float64 else torch.float32)
    try:
        param = torch.nn.Parameter(torch.tensor(p0.copy()))
        torch_opt = getattr(torch.optim, name)([param], foreach=False, **options)
        opt = getattr(gd.optim, name)(backend=backend, **options)
        p = p0.copy()
        for g in grads:
            param.grad = torch.tensor(g)
            torch_opt.step()
            opt.step(p, g)
    finally:
        torch.set_default_dtype(default)
    state = torch_opt.state[param]
    if name == "Rprop":
        np.testing.assert_array_equal(p, param.detach().numpy())
        for key, buf in opt.state.items():
            np.testing.assert_array_equal(buf, state[key].numpy(), err_msg=key)
        return
    tol = 2e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(p, param.detach().numpy(), rtol=tol, atol=tol)
    for key, buf in opt.state.items():
        np.testing.assert_allclose(buf, state[key].numpy(), rtol=tol, atol=tol * 1e-2,
                                   err_msg=key)
