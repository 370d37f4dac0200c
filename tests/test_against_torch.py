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
