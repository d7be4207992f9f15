"""privagg's ghost clipping (dp.ghost) against Opacus, the reference: the same clipped, noised update.

Every model family of fl_core.models is trained with grad_sample_mode="ghost" and with Opacus' "hooks"
mode under one seed (so both see the same Poisson batches and the same noise draw), including Poisson
batches that are empty; the weights must agree to 1e-6. The clipped sums are also checked layer rule by
layer rule against torch.func per-sample gradients, and unsupported layers fall back to Opacus.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from dp.errors import UnsupportedModelError
from dp.ghost import GhostClipper, unsupported_layers
from dp.local import DPSGDConfig, choose_grad_sample_mode, poisson_batches, train_dp_sgd
from fl_core.models import MODELS, build_model

IMAGE, TABULAR = (1, 6, 6), (7,)


def _data(shape: tuple[int, ...], n: int, regression: bool, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, *shape)).astype(np.float32)
    if regression:
        return x, rng.normal(size=n).astype(np.float32)
    return x, rng.integers(0, 3, size=n).astype(np.int64)


def _weights(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def _train(name: str, shape: tuple[int, ...], mode: str, n: int, batch: int, epochs: int) -> torch.Tensor:
    regression = name == "linear"
    x, y = _data(shape, n, regression)
    torch.manual_seed(3)
    model = build_model(name, shape, 1 if regression else 3)
    before = _weights(model)
    cfg = DPSGDConfig(1.0, 0.5, batch, epochs=epochs, lr=0.1, momentum=0.5, grad_sample_mode=mode)  # type: ignore[arg-type]
    res = train_dp_sgd(model, x, y, "mse" if regression else "cross_entropy", cfg, seed=11)
    assert res.grad_sample_mode == mode
    assert "forward" not in vars(model) and all(p.grad is None for p in model.parameters())
    return _weights(model) - before  # the run's update: sum of lr * (clipped sum + noise) / B, with momentum


FAMILIES = [(name, shape) for name in MODELS for shape in (IMAGE, TABULAR)]


def test_every_model_family_is_covered() -> None:
    assert {"logreg", "linear", "mlp", "cnn", "resnet", "conv1d", "gru"} <= set(MODELS)
    for name in MODELS:
        model = build_model(name, IMAGE, 3)
        assert unsupported_layers(model) == [] and choose_grad_sample_mode(model) == "ghost"


@pytest.mark.parametrize("name,shape", FAMILIES)
def test_ghost_equals_opacus_hooks_including_empty_batches(name: str, shape: tuple[int, ...]) -> None:
    # n = 16, B = 1: q = 1/16, so about a third of the 32 Poisson batches are empty and the others hold 1-3
    # records; both runs replay the same batches and the same noise draw (one seed).
    sampler = np.random.Generator(np.random.PCG64(np.random.SeedSequence([11, 0])))
    sizes = [len(b) for b in poisson_batches(sampler, 16, 1 / 16, 32)]
    assert 0 in sizes and max(sizes) >= 2
    ours = _train(name, shape, "ghost", n=16, batch=1, epochs=2)
    ref = _train(name, shape, "hooks", n=16, batch=1, epochs=2)
    torch.testing.assert_close(ours, ref, rtol=0.0, atol=1e-6)


@pytest.mark.parametrize("name,shape", FAMILIES)
def test_ghost_equals_opacus_hooks_with_clipping_at_work(name: str, shape: tuple[int, ...]) -> None:
    # B = 8 of 40: batches of several records, C = 0.5 clips most of them.
    ours = _train(name, shape, "ghost", n=40, batch=8, epochs=2)
    ref = _train(name, shape, "hooks", n=40, batch=8, epochs=2)
    torch.testing.assert_close(ours, ref, rtol=0.0, atol=1e-6)


def _clipped_reference(model: nn.Module, x: torch.Tensor, y: torch.Tensor, clip: float) -> list[torch.Tensor]:
    params = {k: v.detach() for k, v in model.named_parameters()}

    def loss(p: dict[str, torch.Tensor], xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(functional_call(model, p, (xi[None],)), yi[None])

    per_sample = vmap(grad(loss), in_dims=(None, 0, 0))(params, x, y)
    norms = torch.sqrt(sum(g.reshape(len(x), -1).square().sum(1) for g in per_sample.values()))
    factor = (clip / (norms + 1e-6)).clamp(max=1.0)
    return [torch.einsum("i,i...", factor, per_sample[k]) for k, _ in model.named_parameters()]


class _Sequence(nn.Module):
    """A Linear on [B, T, d] (a sequence dimension): the ghost norm's T^2 (d + p) < T d p branch."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(50, 40)
        self.head = nn.Linear(40, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.proj(x.reshape(x.shape[0], 3, 50))).mean(1))


LAYERS = {
    "conv2d stride 2": (lambda: nn.Sequential(nn.Conv2d(2, 5, 3, stride=2, padding=1)), (2, 7, 6)),
    "conv2d dilated, no bias": (
        lambda: nn.Sequential(nn.Conv2d(2, 5, (3, 2), padding=(2, 1), dilation=(1, 2), bias=False)),
        (2, 7, 6),
    ),
    "conv2d ghost branch": (lambda: nn.Sequential(nn.Conv2d(64, 64, 3)), (64, 4, 4)),
    "conv1d dilated + groupnorm": (
        lambda: nn.Sequential(nn.Conv1d(2, 6, 3, padding=2, dilation=2), nn.GroupNorm(2, 6)),
        (2, 9),
    ),
    "linear on a sequence": (_Sequence, (150,)),
}


@pytest.mark.parametrize("case", list(LAYERS))
def test_layer_rules_match_per_sample_gradients(case: str) -> None:
    build, shape = LAYERS[case]
    torch.manual_seed(0)
    body = build()
    model = body if case == "linear on a sequence" else nn.Sequential(body, nn.Flatten(), nn.LazyLinear(3))
    x = torch.randn(6, *shape)
    y = torch.randint(0, 3, (6,))
    model(x)  # materialize the lazy head
    ref = _clipped_reference(model, x, y, 0.5)
    clipper = GhostClipper(model)
    with clipper.recording():
        clipper.clip_and_sum(nn.functional.cross_entropy(model(x), y, reduction="sum"), 0.5)
    for got, want in zip(clipper.grads, ref, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_unsupported_layer_falls_back_to_opacus() -> None:
    def build() -> nn.Module:
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(7, 8), nn.PReLU(), nn.Linear(8, 3))

    x, y = _data(TABULAR, 40, False)
    assert unsupported_layers(build()) == ["1 (no ghost-norm rule for PReLU)"]
    cfg = DPSGDConfig(1.0, 0.5, 8, epochs=1, lr=0.5)
    auto, hooks = build(), build()
    res = train_dp_sgd(auto, x, y, "cross_entropy", cfg, seed=5)
    assert res.grad_sample_mode == "hooks"
    train_dp_sgd(
        hooks, x, y, "cross_entropy", DPSGDConfig(1.0, 0.5, 8, lr=0.5, grad_sample_mode="hooks"), seed=5
    )
    assert torch.equal(_weights(auto), _weights(hooks))
    with pytest.raises(UnsupportedModelError, match=r"PReLU.*'auto'"):
        train_dp_sgd(
            build(), x, y, "cross_entropy", DPSGDConfig(1.0, 0.5, 8, grad_sample_mode="ghost"), seed=5
        )


def test_shared_parameters_are_not_supported() -> None:
    first = nn.Linear(4, 4)
    model = nn.Sequential(first, nn.ReLU(), nn.Linear(4, 4))
    model[2].weight = first.weight
    problems = unsupported_layers(model)
    assert len(problems) == 1 and "shared" in problems[0]
    with pytest.raises(ValueError, match="shared"):
        GhostClipper(model)


def test_a_layer_called_with_a_keyword_input_is_recorded() -> None:
    class Keyword(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layer = nn.Linear(4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.layer(input=x)

    torch.manual_seed(0)
    model = Keyword()
    x, y = torch.randn(5, 4), torch.randint(0, 3, (5,))
    ref = _clipped_reference(model, x, y, 0.5)
    clipper = GhostClipper(model)
    with clipper.recording():
        clipper.clip_and_sum(nn.functional.cross_entropy(model(x), y, reduction="sum"), 0.5)
    for got, want in zip(clipper.grads, ref, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_recording_restores_the_model_after_an_error() -> None:
    model = nn.Sequential(nn.Linear(4, 3))
    clipper = GhostClipper(model)
    with pytest.raises(RuntimeError), clipper.recording():
        model(torch.zeros(2, 5))  # wrong width
    assert "forward" not in vars(model[0])
    assert model(torch.zeros(2, 4)).shape == (2, 3)
