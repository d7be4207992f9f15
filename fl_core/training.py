"""Local training and evaluation of a torch model on in-memory arrays (shared by clients and the baseline)."""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

Task = Literal["classification", "regression"]


def as_tensors(x: np.ndarray, y: np.ndarray, task: Task) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-copy torch views of a client's arrays, with the label dtype the loss expects."""
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    if task == "classification":
        yt = torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64))
    else:
        yt = torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32))
    return xt, yt


def loss_fn(output: torch.Tensor, y: torch.Tensor, task: Task) -> torch.Tensor:
    """Cross-entropy for classification, mean squared error for (single-output) regression."""
    if task == "classification":
        return F.cross_entropy(output, y)
    return F.mse_loss(output.reshape(-1), y)


def train_epochs(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    task: Task,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    momentum: float = 0.0,
    generator: torch.Generator,
    prox_center: list[torch.Tensor] | None = None,
    proximal_mu: float = 0.0,
) -> float:
    """Plain minibatch SGD for `epochs` passes over shuffled data; returns the mean training loss.

    With `proximal_mu > 0` the FedProx term mu/2 ||w - w_global||^2 (Li et al., MLSys 2020, eq. 2)
    is added to every minibatch loss, `prox_center` holding w_global.
    """
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    n = x.shape[0]
    bs = max(1, min(batch_size, n))
    total, count = 0.0, 0
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, bs):
            idx = order[start : start + bs]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x[idx]), y[idx], task)
            total += float(loss.detach()) * idx.numel()
            count += idx.numel()
            if proximal_mu > 0.0 and prox_center is not None:
                prox = sum(((p - c) ** 2).sum() for p, c in zip(model.parameters(), prox_center, strict=True))
                loss = loss + 0.5 * proximal_mu * prox
            loss.backward()
            opt.step()
    return total / max(count, 1)


@torch.no_grad()
def evaluate(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, task: Task, batch: int = 2048
) -> dict[str, float]:
    """Loss and accuracy (classification) or loss, MSE and R^2 (regression) on one array pair."""
    model.eval()
    outs = [model(x[i : i + batch]) for i in range(0, x.shape[0], batch)]
    out = torch.cat(outs) if outs else torch.empty(0)
    loss = float(loss_fn(out, y, task))
    if task == "classification":
        acc = float((out.argmax(dim=1) == y).float().mean())
        return {"loss": loss, "accuracy": acc}
    pred = out.reshape(-1)
    ss_res = float(((pred - y) ** 2).sum())
    ss_tot = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan")
    return {"loss": loss, "mse": ss_res / max(y.numel(), 1), "r2": r2}
