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
