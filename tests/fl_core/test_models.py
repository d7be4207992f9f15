"""Model zoo: every model on every dataset shape, exact flatten/unflatten, seeded init, DP-SGD compatible."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from opacus import GradSampleModule
from opacus.validators import ModuleValidator
from torch import nn

from fl_core.data import load_dataset
from fl_core.errors import ConfigError, FLError
from fl_core.models import MODELS, build_model, get_flat, num_parameters, set_flat

# Example shape and output width of each bundled dataset: digits (10), breast_cancer (2), diabetes (1).
SHAPES = {"digits": ((1, 8, 8), 10), "breast_cancer": ((30,), 2), "diabetes": ((10,), 1)}
PAIRS = [(m, d) for m in MODELS for d in SHAPES]


@pytest.fixture(scope="module")
def batches() -> dict[str, torch.Tensor]:
    return {name: torch.from_numpy(load_dataset(name).x_test[:6]) for name in SHAPES}


def _model(name: str, dataset: str, seed: int = 0) -> nn.Module:
    shape, outputs = SHAPES[dataset]
    torch.manual_seed(seed)
    return build_model(name, shape, outputs)


def test_zoo_names() -> None:
    assert set(MODELS) == {"logreg", "linear", "mlp", "cnn", "resnet", "conv1d", "gru"}


@pytest.mark.parametrize(("name", "dataset"), PAIRS)
def test_forward_shape_on_real_data(name: str, dataset: str, batches: dict[str, torch.Tensor]) -> None:
    model = _model(name, dataset)
    out = model(batches[dataset])
    assert out.shape == (6, SHAPES[dataset][1])
    assert torch.isfinite(out).all()


@pytest.mark.parametrize(("name", "dataset"), PAIRS)
def test_flat_round_trip_is_exact(name: str, dataset: str, batches: dict[str, torch.Tensor]) -> None:
    source, target = _model(name, dataset, seed=1), _model(name, dataset, seed=2)
    vec = get_flat(source)
    assert vec.dtype == np.float32 and vec.ndim == 1 and vec.flags.c_contiguous
    assert len(vec) == num_parameters(source) == sum(p.numel() for p in source.parameters())
    assert not np.array_equal(vec, get_flat(target))
    set_flat(target, vec)
    np.testing.assert_array_equal(get_flat(target), vec)
    for p, q in zip(source.parameters(), target.parameters(), strict=True):
        assert torch.equal(p, q)
    x = batches[dataset]
    assert torch.equal(source(x), target(x))


def test_get_flat_is_a_copy_in_parameter_order() -> None:
    model = _model("mlp", "breast_cancer")
    vec = get_flat(model)
    first = next(model.parameters())
    np.testing.assert_array_equal(vec[: first.numel()], first.detach().numpy().reshape(-1))
    vec[:] = 7.0
    assert not torch.any(first == 7.0)
    back = get_flat(model)
    back[0] = 123.0
    assert float(first.detach().reshape(-1)[0]) != 123.0


def test_set_flat_known_answer_on_logreg() -> None:
    model = build_model("logreg", (3,), 2)
    set_flat(model, np.array([1, 2, 3, 4, 5, 6, 0.5, -0.5], dtype=np.float32))
    out = model(torch.tensor([[1.0, 0.0, 1.0]]))
    # weight rows (1, 2, 3) and (4, 5, 6), then the bias (0.5, -0.5): model.parameters() order.
    np.testing.assert_array_equal(out.detach().numpy(), [[4.5, 9.5]])


def test_set_flat_accepts_float64_that_is_float32_exact() -> None:
    model = _model("cnn", "digits")
    vec = get_flat(model)
    fresh = _model("cnn", "digits", seed=5)
    set_flat(fresh, vec.astype(np.float64))
    np.testing.assert_array_equal(get_flat(fresh), vec)


@pytest.mark.parametrize(
    ("vec", "match"),
    [
        (np.zeros(10, dtype=np.float32), r"length 10, expected 62"),
        (np.zeros(63, dtype=np.float32), r"length 63, expected 62"),
        (np.zeros((2, 31), dtype=np.float32), "1-D"),
        (np.r_[np.zeros(61), np.nan].astype(np.float32), "1 NaN/Inf"),
        (np.r_[np.zeros(60), np.inf, -np.inf].astype(np.float32), "2 NaN/Inf"),
        (np.r_[np.zeros(61), 1e300], "NaN/Inf value.*float32"),
        (np.array(["a"] * 62), "numeric"),
    ],
)
def test_set_flat_rejects_bad_vectors(vec: np.ndarray, match: str) -> None:
    model = _model("logreg", "breast_cancer")
    before = get_flat(model)
    with pytest.raises(ConfigError, match=match):
        set_flat(model, vec)
    np.testing.assert_array_equal(get_flat(model), before)  # untouched on error
    assert issubclass(ConfigError, FLError)


@pytest.mark.parametrize("name", MODELS)
def test_init_is_deterministic_under_torch_seed(name: str) -> None:
    a, b, c = _model(name, "digits", 3), _model(name, "digits", 3), _model(name, "digits", 4)
    np.testing.assert_array_equal(get_flat(a), get_flat(b))
    assert not np.array_equal(get_flat(a), get_flat(c))


@pytest.mark.parametrize(("name", "dataset"), PAIRS)
def test_no_batchnorm_and_opacus_validator_clean(name: str, dataset: str) -> None:
    model = _model(name, dataset)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    assert ModuleValidator.validate(model, strict=False) == []


@pytest.mark.filterwarnings("ignore:Full backward hook is firing")
@pytest.mark.parametrize(("name", "dataset"), [(m, d) for m in MODELS for d in ("digits", "breast_cancer")])
def test_opacus_per_sample_gradients_sum_to_batch_gradient(
    name: str, dataset: str, batches: dict[str, torch.Tensor]
) -> None:
    """DP-SGD needs per-example gradients: Opacus' hooks must compute them for every parameter, exactly."""
    model = _model(name, dataset)
    x = batches[dataset]
    y = torch.arange(len(x)) % SHAPES[dataset][1]
    loss_fn = nn.CrossEntropyLoss(reduction="sum")
    loss_fn(model(x), y).backward()
    reference = [p.grad.detach().clone() for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    wrapped = GradSampleModule(model, loss_reduction="sum")
    loss_fn(wrapped(x), y).backward()
    for p, ref in zip(model.parameters(), reference, strict=True):
        assert p.grad_sample is not None and p.grad_sample.shape == (len(x), *p.shape)
        torch.testing.assert_close(p.grad_sample.sum(dim=0), ref, rtol=1e-4, atol=1e-5)
    wrapped._close()


def test_sizes_fit_the_default_job() -> None:
    sizes = {name: num_parameters(_model(name, "digits")) for name in MODELS}
    assert 5_000 <= sizes["cnn"] <= 20_000
    assert sizes["logreg"] == sizes["linear"] == 64 * 10 + 10
    assert sizes["mlp"] == 64 * 64 + 64 + 64 * 64 + 64 + 64 * 10 + 10
    assert max(sizes.values()) <= 20_000


def test_resnet_is_deeper_than_cnn() -> None:
    def convs(model: nn.Module) -> int:
        return sum(isinstance(m, (nn.Conv1d, nn.Conv2d)) for m in model.modules())

    assert convs(_model("cnn", "digits")) == 2
    assert convs(_model("resnet", "digits")) >= 7
    assert convs(_model("resnet", "diabetes")) >= 7


def test_two_dimensional_shape_reads_as_one_channel() -> None:
    torch.manual_seed(0)
    x = torch.rand(4, 8, 8)
    for name in MODELS:
        model = build_model(name, (8, 8), 3)
        torch.testing.assert_close(model(x), model(x[:, None]), rtol=0, atol=0)


def test_sequence_models_read_image_rows_in_order() -> None:
    """The GRU reads image rows as time steps, so reversing the row order changes its output."""
    torch.manual_seed(0)
    model = build_model("gru", (1, 8, 8), 4)
    x = torch.rand(2, 1, 8, 8)
    assert not torch.allclose(model(x), model(x.flip(dims=[2])))


def test_unknown_model_lists_known_names() -> None:
    with pytest.raises(ConfigError, match="'vit'.*logreg, linear, mlp, cnn, resnet, conv1d, gru"):
        build_model("vit", (1, 8, 8), 10)


@pytest.mark.parametrize("shape", [(), (0,), (-1, 8), (1, 2, 3, 4), (8.0,), None, "abc", (True,)])
def test_bad_input_shape(shape: object) -> None:
    with pytest.raises(ConfigError, match="input_shape"):
        build_model("mlp", shape, 2)  # type: ignore[arg-type]


@pytest.mark.parametrize("outputs", [0, -1, 2.0, True])
def test_bad_num_outputs(outputs: object) -> None:
    with pytest.raises(ConfigError, match="num_outputs"):
        build_model("mlp", (4,), outputs)  # type: ignore[arg-type]
