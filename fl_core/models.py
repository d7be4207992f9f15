"""The model zoo (logistic/linear, MLP, CNN, residual CNN, 1D-CNN, GRU) and a model <-> float32 vector map.

Every model takes images (C, H, W) or tabular rows (F,), returns (batch, num_outputs), and uses GroupNorm
instead of BatchNorm so that Opacus' DP-SGD accepts it (per-sample gradients need no batch statistics).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from opacus.layers import DPGRU
from torch import nn

from fl_core.errors import ConfigError

HIDDEN = 64  # MLP width
CHANNELS = 16  # CNN / ResNet width
SEQ_CHANNELS = 32  # 1D-CNN and GRU width


def _groupnorm(channels: int) -> nn.GroupNorm:
    """GroupNorm, 4 channels a group: per-example statistics keep DP-SGD's per-sample gradients valid."""
    return nn.GroupNorm(max(1, channels // 4), channels)


class _View(nn.Module):
    """Reshape (batch, *input_shape) to (batch, *shape): tabular rows become 1-channel signals, etc."""

    def __init__(self, *shape: int) -> None:
        super().__init__()
        self.shape = shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], *self.shape)


class _AsSequence(nn.Module):
    """Images (C, H, W) -> H steps of C*W features; tabular (F,) -> F steps of 1 feature.

    ``channels_first`` returns (batch, features, steps) for Conv1d, else (batch, steps, features) for a GRU.
    """

    def __init__(self, input_shape: tuple[int, ...], channels_first: bool) -> None:
        super().__init__()
        self.image_shape = input_shape if len(input_shape) == 3 else None
        self.channels_first = channels_first

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.image_shape is not None:
            c, h, w = self.image_shape
            seq = x.reshape(x.shape[0], c, h, w).permute(0, 2, 1, 3).reshape(x.shape[0], h, c * w)
        else:
            seq = x.reshape(x.shape[0], -1, 1)
        return seq.transpose(1, 2) if self.channels_first else seq


def _sequence_dims(input_shape: tuple[int, ...]) -> tuple[int, int]:
    """(steps, features per step) of the sequence view of an input."""
    if len(input_shape) == 3:
        c, h, w = input_shape
        return h, c * w
    return math.prod(input_shape), 1


def _spatial(input_shape: tuple[int, ...]) -> tuple[int, tuple[int, ...], nn.Module]:
    """(in_channels, spatial dims, adapter) for the convolutional models: images stay 2-D, tabular is 1-D."""
    if len(input_shape) == 3:
        return input_shape[0], input_shape[1:], _View(*input_shape)
    features = math.prod(input_shape)
    return 1, (features,), _View(1, features)


def _conv(dims: int, c_in: int, c_out: int, kernel: int = 3) -> nn.Module:
    cls = nn.Conv2d if dims == 2 else nn.Conv1d
    return cls(c_in, c_out, kernel, padding=kernel // 2)


def _pool(dims: int, size: int) -> nn.Module:
    return nn.AdaptiveAvgPool2d(size) if dims == 2 else nn.AdaptiveAvgPool1d(size)


def _linear_model(input_shape: tuple[int, ...], num_outputs: int) -> nn.Module:
    """One linear layer on the flattened input: logistic regression (with softmax in the loss) or linear."""
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), num_outputs))


def _mlp(input_shape: tuple[int, ...], num_outputs: int) -> nn.Module:
    """Two hidden ReLU layers of HIDDEN units."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(math.prod(input_shape), HIDDEN),
        nn.ReLU(),
        nn.Linear(HIDDEN, HIDDEN),
        nn.ReLU(),
        nn.Linear(HIDDEN, num_outputs),
    )


def _cnn(input_shape: tuple[int, ...], num_outputs: int) -> nn.Module:
    """Two 3x3 conv + GroupNorm + ReLU layers (16, 32 channels), pooled to 4x4 (or 8 positions), linear."""
    c_in, spatial, adapter = _spatial(input_shape)
    dims = len(spatial)
    pooled = 4 if dims == 2 else 8
    return nn.Sequential(
        adapter,
        _conv(dims, c_in, CHANNELS),
        _groupnorm(CHANNELS),
        nn.ReLU(),
        _conv(dims, CHANNELS, 2 * CHANNELS),
        _groupnorm(2 * CHANNELS),
        nn.ReLU(),
        _pool(dims, pooled),
        nn.Flatten(),
        nn.Linear(2 * CHANNELS * pooled**dims, num_outputs),
    )


class _ResidualBlock(nn.Module):
    """ReLU(x + GN(conv(ReLU(GN(conv(x)))))): He et al. 2016's basic block, GroupNorm for BatchNorm."""

    def __init__(self, dims: int, channels: int) -> None:
        super().__init__()
        self.conv1 = _conv(dims, channels, channels)
        self.norm1 = _groupnorm(channels)
        self.conv2 = _conv(dims, channels, channels)
        self.norm2 = _groupnorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.norm1(self.conv1(x)))
        return torch.relu(x + self.norm2(self.conv2(out)))


def _resnet(input_shape: tuple[int, ...], num_outputs: int, blocks: int = 3) -> nn.Module:
    """Stem conv, three residual blocks of 16 channels (7 conv layers deep), pooled to 2x2 (or 4), linear."""
    c_in, spatial, adapter = _spatial(input_shape)
    dims = len(spatial)
    pooled = 2 if dims == 2 else 4
    return nn.Sequential(
        adapter,
        _conv(dims, c_in, CHANNELS),
        _groupnorm(CHANNELS),
        nn.ReLU(),
        *[_ResidualBlock(dims, CHANNELS) for _ in range(blocks)],
        _pool(dims, pooled),
        nn.Flatten(),
        nn.Linear(CHANNELS * pooled**dims, num_outputs),
    )


def _conv1d(input_shape: tuple[int, ...], num_outputs: int) -> nn.Module:
    """1D-CNN mixing neighbouring features of the sequence view (image rows, or the tabular columns)."""
    _, features = _sequence_dims(input_shape)
    pooled = 4
    return nn.Sequential(
        _AsSequence(input_shape, channels_first=True),
        nn.Conv1d(features, SEQ_CHANNELS, 3, padding=1),
        _groupnorm(SEQ_CHANNELS),
        nn.ReLU(),
        nn.Conv1d(SEQ_CHANNELS, SEQ_CHANNELS, 3, padding=1),
        _groupnorm(SEQ_CHANNELS),
        nn.ReLU(),
        nn.AdaptiveAvgPool1d(pooled),
        nn.Flatten(),
        nn.Linear(SEQ_CHANNELS * pooled, num_outputs),
    )


class _GRUModel(nn.Module):
    """A GRU over the sequence view, last hidden state into a linear head; Opacus' DPGRU, so DP-SGD works."""

    def __init__(self, input_shape: tuple[int, ...], num_outputs: int) -> None:
        super().__init__()
        _, features = _sequence_dims(input_shape)
        self.sequence = _AsSequence(input_shape, channels_first=False)
        self.gru = DPGRU(features, SEQ_CHANNELS, batch_first=True)
        self.head = nn.Linear(SEQ_CHANNELS, num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, h_n = self.gru(self.sequence(x))
        return self.head(h_n[-1])


_BUILDERS: dict[str, Callable[[tuple[int, ...], int], nn.Module]] = {
    "logreg": _linear_model,
    "linear": _linear_model,
    "mlp": _mlp,
    "cnn": _cnn,
    "resnet": _resnet,
    "conv1d": _conv1d,
    "gru": _GRUModel,
}
MODELS: tuple[str, ...] = tuple(_BUILDERS)


def _check_shape(input_shape: object) -> tuple[int, ...]:
    try:
        shape = tuple(input_shape)  # type: ignore[arg-type]
    except TypeError:
        raise ConfigError(f"input_shape must be a tuple of sizes, got {input_shape!r}") from None
    ok = all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s >= 1 for s in shape)
    if not ok or not 1 <= len(shape) <= 3:
        raise ConfigError(
            f"input_shape must be (F,), (H, W) or (C, H, W) with positive sizes, got {input_shape!r}"
        )
    shape = tuple(int(s) for s in shape)
    return (1, *shape) if len(shape) == 2 else shape


def build_model(name: str, input_shape: tuple[int, ...], num_outputs: int) -> nn.Module:
    """Build a zoo model for ``input_shape`` ((F,) tabular or (C, H, W) images) with ``num_outputs`` outputs.

    An (H, W) shape is read as one channel; inputs may come as (batch, H, W) or (batch, 1, H, W).
    The initial weights follow torch's global seed (torch.manual_seed), so a seed fixes them.
    """
    if name not in _BUILDERS:
        raise ConfigError(f"unknown model {name!r}; known models: {', '.join(MODELS)}")
    shape = _check_shape(input_shape)
    if isinstance(num_outputs, bool) or not isinstance(num_outputs, (int, np.integer)) or num_outputs < 1:
        raise ConfigError(f"num_outputs must be an integer >= 1, got {num_outputs!r}")
    return _BUILDERS[name](shape, int(num_outputs))


def num_parameters(model: nn.Module) -> int:
    """Number of scalars in the model's parameters (the length of get_flat's vector)."""
    return sum(p.numel() for p in model.parameters())


def get_flat(model: nn.Module) -> np.ndarray:
    """All parameters, in model.parameters() order, as one new contiguous float32 vector."""
    params = [p.detach().reshape(-1).to(device="cpu", dtype=torch.float32) for p in model.parameters()]
    if not params:
        return np.zeros(0, dtype=np.float32)
    return np.array(torch.cat(params).numpy(), dtype=np.float32, copy=True)


def set_flat(model: nn.Module, vec: np.ndarray) -> None:
    """Load a get_flat vector into the model in place; exact for float32 (ConfigError on a bad vector)."""
    arr = np.asarray(vec)
    expected = num_parameters(model)
    if arr.ndim != 1:
        raise ConfigError(f"model vector must be 1-D, got shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ConfigError(f"model vector must be numeric, got dtype {arr.dtype}")
    if arr.shape[0] != expected:
        raise ConfigError(f"model vector has length {arr.shape[0]}, expected {expected} (num_parameters)")
    with np.errstate(over="ignore", invalid="ignore"):
        flat = np.ascontiguousarray(arr, dtype=np.float32)
    bad = int(flat.size - np.count_nonzero(np.isfinite(flat)))
    if bad:
        raise ConfigError(f"model vector has {bad} NaN/Inf value(s) (after casting to float32)")
    source = torch.from_numpy(flat)
    offset = 0
    with torch.no_grad():
        for p in model.parameters():
            n = p.numel()
            p.copy_(source[offset : offset + n].view_as(p))
            offset += n
