"""DP-SGD through Opacus: rejects bad models before training, trains, and reports the accountant's epsilon."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from dp import events as E
from dp.accountant import PrivacyAccountant, epsilon_for
from dp.errors import InvalidPrivacyParameterError, UnsupportedModelError
from dp.local import DPSGDConfig, calibrate_dp_sgd, choose_grad_sample_mode, train_dp_sgd


def _blobs(n: int = 300, d: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    x = rng.normal(size=(n, d)).astype(np.float32) + (2.0 * y[:, None] - 1.0).astype(np.float32)
    return x, y.astype(np.int64)


def _mlp(d: int = 8) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(d, 16), nn.ReLU(), nn.Linear(16, 2))


def test_rejects_batchnorm_before_training() -> None:
    model = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 2))
    before = [p.detach().clone() for p in model.parameters()]
    x, y = _blobs()
    with pytest.raises(UnsupportedModelError, match=r"layer '1' \(BatchNorm1d\).*GroupNorm"):
        train_dp_sgd(model, x, y, "cross_entropy", DPSGDConfig(1.0, 1.0, 32))
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_rejects_gru_with_fix() -> None:
    class M(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = nn.GRU(4, 4, batch_first=True)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.rnn(x)[0][:, -1]

    with pytest.raises(UnsupportedModelError, match="layer 'rnn'.*DPGRU"):
        train_dp_sgd(
            M(),
            np.zeros((10, 3, 4), np.float32),
            np.zeros(10, np.int64),
            "cross_entropy",
            DPSGDConfig(1.0, 1.0, 5),
        )


def test_trains_and_reports_accountant_epsilon() -> None:
    x, y = _blobs()
    model = _mlp()
    cfg = DPSGDConfig(noise_multiplier=1.0, max_grad_norm=1.0, batch_size=30, epochs=4, lr=0.5, delta=1e-4)
    res = train_dp_sgd(model, x, y, "cross_entropy", cfg, seed=1)
    assert res.steps == 40 and res.sample_rate == pytest.approx(0.1)
    assert res.last_epoch_loss < 0.8 * res.first_epoch_loss
    acc = float((model(torch.from_numpy(x)).argmax(1).numpy() == y).mean())
    assert acc > 0.85
    assert res.epsilon == epsilon_for(1.0, 0.1, 40, 1e-4)
    ledger = PrivacyAccountant(delta=1e-4)
    ledger.commit(res.event)
    assert res.event == E.dp_sgd(1.0, 0.1, 40)
    assert ledger.epsilon() == pytest.approx(res.epsilon, rel=1e-12)
    assert res.seeded and res.grad_sample_mode == "ghost"
    assert type(model) is nn.Sequential and not hasattr(model[0].weight, "grad_sample")


def test_ghost_and_hooks_agree_under_one_seed() -> None:
    x, y = _blobs(120)
    out = {}
    for mode in ("ghost", "opacus_ghost", "hooks"):
        m = _mlp()
        train_dp_sgd(
            m, x, y, "cross_entropy", DPSGDConfig(1.0, 0.5, 20, epochs=1, grad_sample_mode=mode), seed=7
        )
        out[mode] = torch.cat([p.detach().ravel() for p in m.parameters()])
    assert torch.allclose(out["ghost"], out["hooks"], atol=1e-5)
    assert torch.allclose(out["opacus_ghost"], out["hooks"], atol=1e-5)


def test_noise_scale_and_public_denominator() -> None:
    # All per-sample gradients are zero (x = 0, y = 0, no bias), so each step moves the weights by
    # lr * N(0, (zC)^2) / B exactly: after S steps the change has std lr * z * C * sqrt(S) / B.
    n, d, out_dim, b = 400, 50, 40, 20
    model = nn.Linear(d, out_dim, bias=False)
    w0 = model.weight.detach().clone()
    cfg = DPSGDConfig(noise_multiplier=2.0, max_grad_norm=0.5, batch_size=b, epochs=1, lr=1.0)
    res = train_dp_sgd(
        model, np.zeros((n, d), np.float32), np.zeros((n, out_dim), np.float32), "mse", cfg, seed=3
    )
    change = (model.weight.detach() - w0).numpy().ravel()
    expected = 1.0 * 2.0 * 0.5 * np.sqrt(res.steps) / b
    assert abs(float(np.std(change)) / expected - 1.0) < 0.1


def test_auto_mode_choice_and_unseeded_runs_differ() -> None:
    assert choose_grad_sample_mode(_mlp()) == "ghost"
    assert choose_grad_sample_mode(nn.Sequential(nn.Linear(4, 4), nn.PReLU())) == "hooks"
    conv = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(8, 2))
    assert choose_grad_sample_mode(conv) == "ghost"  # privagg's ghost clipping covers convolutions
    emb = nn.Sequential(nn.Embedding(5, 4), nn.Flatten(), nn.Linear(8, 2))
    assert choose_grad_sample_mode(emb) == "opacus_ghost"  # Opacus has a ghost-norm sampler for it
    x, y = _blobs(60)
    a, b = _mlp(), _mlp()
    cfg = DPSGDConfig(1.0, 1.0, 10, epochs=1)
    ra = train_dp_sgd(a, x, y, "cross_entropy", cfg)
    train_dp_sgd(b, x, y, "cross_entropy", cfg)
    assert not ra.seeded
    assert not torch.equal(a[0].weight, b[0].weight)


def test_calibrate_dp_sgd_reexport() -> None:
    z = calibrate_dp_sgd(4.0, 1e-5, 1000, 100, 3)
    assert epsilon_for(z, 0.1, 30, 1e-5) <= 4.0


@pytest.mark.parametrize(
    "kwargs,value",
    [
        ({"noise_multiplier": 0.0}, "0.0"),
        ({"max_grad_norm": -1.0}, "-1.0"),
        ({"batch_size": 0}, "0"),
        ({"delta": 1.5}, "1.5"),
        ({"grad_sample_mode": "fastest"}, "fastest"),
    ],
)
def test_config_validation(kwargs: dict, value: str) -> None:
    base = {"noise_multiplier": 1.0, "max_grad_norm": 1.0, "batch_size": 10} | kwargs
    with pytest.raises(InvalidPrivacyParameterError, match=value.replace(".", r"\.")):
        DPSGDConfig(**base)


def test_bad_inputs() -> None:
    x, y = _blobs(50)
    with pytest.raises(InvalidPrivacyParameterError, match="hinge"):
        train_dp_sgd(_mlp(), x, y, "hinge", DPSGDConfig(1.0, 1.0, 10))
    with pytest.raises(InvalidPrivacyParameterError, match="49"):
        train_dp_sgd(_mlp(), x, y[:49], "cross_entropy", DPSGDConfig(1.0, 1.0, 10))
    with pytest.raises(InvalidPrivacyParameterError, match="500"):
        train_dp_sgd(_mlp(), x, y, "cross_entropy", DPSGDConfig(1.0, 1.0, 500))


def test_delta_at_least_one_over_n_warns() -> None:
    from dp.errors import DeltaWarning

    x, y = _blobs(40)
    with pytest.warns(DeltaWarning, match="N=40"):
        train_dp_sgd(_mlp(), x, y, "cross_entropy", DPSGDConfig(1.0, 1.0, 10, delta=0.05), seed=0)
