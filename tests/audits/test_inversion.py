"""Gradient inversion on digits: a plain batch-1 update gives the input away; the secure sum does not."""

import numpy as np
import pytest
import torch

import secagg
from audits.errors import AuditError
from audits.inversion import (
    client_update,
    exact_fc_inversion,
    infer_label,
    inversion_experiment,
    psnr,
    ssim,
)
from audits.plots import plot_reconstructions
from fl_core.data import load_dataset
from fl_core.models import build_model


@pytest.fixture(scope="module")
def digits():
    torch.set_num_threads(1)
    ds = load_dataset("digits")
    torch.manual_seed(0)
    return ds, ds.x_train[:8], ds.y_train[:8]


def _secure(updates):
    bound = float(np.max(np.abs(updates))) * 1.01
    total, _ = secagg.secure_sum(updates, clip_range=bound, rng=np.random.default_rng(0))
    return total


def test_psnr_and_ssim_known_answers():
    a = np.zeros((8, 8))
    b = np.full((8, 8), 0.1)
    assert psnr(a, b) == pytest.approx(20.0)  # MSE 0.01 on range 1 -> 20 dB
    assert psnr(a, a) == float("inf")
    rng = np.random.default_rng(0)
    img = rng.random((8, 8))
    assert ssim(img, img) == pytest.approx(1.0)
    assert ssim(img, img + 0.02) > 0.95
    assert ssim(img, 1 - img) < 0  # inverted contrast: negative structure term
    assert ssim(img, rng.random((8, 8))) < 0.3


def test_exact_attack_recovers_a_plain_update_and_fails_on_the_secure_aggregate(digits, tmp_path):
    ds, x, y = digits
    model = build_model("mlp", ds.input_shape, ds.num_outputs)
    u = client_update(model, x[:1], y[:1], lr=0.05)
    rec = exact_fc_inversion(u, model)
    np.testing.assert_allclose(rec, x[0].reshape(-1), atol=1e-5)
    res = inversion_experiment(model, x, y, method="exact", secure_sum=_secure)
    assert res.cohort == 8
    assert res.plain_psnr > 60
    assert res.aggregate_psnr < 20  # against every one of the 8 inputs
    png = plot_reconstructions(
        tmp_path / "rec.png",
        {"original": list(x), "plain": [res.plain], "aggregate": [res.aggregate]},
    )
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_optimization_attack_on_a_cnn(digits):
    ds, x, y = digits
    model = build_model("cnn", ds.input_shape, ds.num_outputs)
    u = client_update(model, x[:1], y[:1])
    assert infer_label(u, model) == int(y[0])
    res = inversion_experiment(model, x, y, method="optimization", secure_sum=_secure, iterations=120)
    assert res.plain_psnr > 20 and res.plain_ssim > 0.8
    assert res.aggregate_psnr < res.plain_psnr - 8


def test_exact_attack_needs_a_linear_first_layer(digits):
    ds, x, y = digits
    cnn = build_model("cnn", ds.input_shape, ds.num_outputs)
    with pytest.raises(AuditError, match="fully connected first layer"):
        exact_fc_inversion(np.zeros(sum(p.numel() for p in cnn.parameters())), cnn)
    with pytest.raises(AuditError, match="method"):
        inversion_experiment(cnn, x, y, method="dlg")
