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
