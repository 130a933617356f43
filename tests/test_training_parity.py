"""Whole training runs against PyTorch: same initial weights, same batches, same final weights."""
import numpy as np
import pytest
import torch

import ember


def _mlp(mod):
    nn = mod.nn
    return nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 16), nn.Tanh(), nn.Linear(16, 5))


def _run(mod, opt_name, init, X, Y, steps, dtype):
    model = _mlp(mod)
    if dtype == np.float64:
        model = model.double()
    model.load_state_dict({k: mod.tensor(v) for k, v in init.items()})
    if opt_name == "sgd":
        opt = mod.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-4)
    else:
        opt = mod.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    loss_fn = mod.nn.CrossEntropyLoss()
    for s in range(steps):
        i = (s * 16) % len(X)
        xb, yb = mod.tensor(X[i:i + 16]), mod.tensor(Y[i:i + 16])
        opt.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()
    return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}, loss.item()


@pytest.mark.parametrize("opt_name", ["sgd", "adam"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mlp_200_steps_matches_pytorch(opt_name, dtype):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((256, 20)).astype(dtype)
    Y = rng.integers(0, 5, 256)
    torch.manual_seed(0)
    ref = _mlp(torch)
    init = {k: v.detach().numpy().astype(dtype) for k, v in ref.state_dict().items()}
    ew, el = _run(ember, opt_name, init, X, Y, 200, dtype)
    tw, tl = _run(torch, opt_name, init, X, Y, 200, dtype)
    assert set(ew) == set(tw)
    for k in tw:
        np.testing.assert_allclose(ew[k], tw[k], atol=1e-4, rtol=0, err_msg=k)
    assert el == pytest.approx(tl, abs=1e-4)
