"""DP benchmark (run by hand): DP-SGD throughput per Opacus grad-sample mode vs non-private training,
accuracy at epsilon 1/3/8 vs non-private on pooled data, and accountant time vs dp_accounting directly.

    .venv/bin/python benchmarks/dp_bench.py                    # everything (several minutes on 1 core)
    .venv/bin/python benchmarks/dp_bench.py --parts accountant # one part; also throughput, accuracy
    .venv/bin/python benchmarks/dp_bench.py --parts accuracy --seeds 2 --epochs 30

One torch thread throughout; ratios are against a baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import dp_accounting as dpa  # noqa: E402
from dp_accounting.pld import pld_privacy_accountant  # noqa: E402
from dp_accounting.rdp import rdp_privacy_accountant  # noqa: E402

from dp import clear_caches  # noqa: E402
from dp.accountant import PrivacyAccountant, epsilon_for  # noqa: E402
from dp.calibration import calibrate_dp_sgd  # noqa: E402
from dp.events import poisson_round  # noqa: E402
from dp.local import DPSGDConfig, train_dp_sgd  # noqa: E402
from fl_core.data import load_dataset  # noqa: E402
from fl_core.models import build_model  # noqa: E402

#: Tuned defaults (expected batch, clip, lr, momentum) per workload; see docs/dp.md.
WORKLOADS = {
    "digits-cnn": (
        "digits",
        "cnn",
        {"batch_size": 96, "max_grad_norm": 0.5, "lr": 3.0, "momentum": 0.0, "epochs": 15},
    ),
    "breast_cancer-mlp": (
        "breast_cancer",
        "mlp",
        {"batch_size": 256, "max_grad_norm": 1.0, "lr": 0.2, "momentum": 0.5, "epochs": 30},
    ),
}
NONPRIVATE = {
    "digits-cnn": {"lr": 0.1, "batch_size": 64},
    "breast_cancer-mlp": {"lr": 0.05, "batch_size": 32},
}


def _table(headers: list[str], rows: list[list[object]]) -> None:
    cells = [[str(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in cells:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |")
    print()


def _model(ds, name: str, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return build_model(name, ds.input_shape, ds.num_classes)


def _train_nonprivate(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    epochs: int,
    batch: int,
    lr: float,
    seed: int,
    momentum: float = 0.9,
) -> float:
    """Plain mini-batch SGD, same data path as DP-SGD (numpy index batches); returns samples/s."""
    rng = np.random.default_rng(seed)
    xt, yt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), torch.from_numpy(y)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    crit = nn.CrossEntropyLoss()
    model.train()
    n, seen, t0 = len(x), 0, time.perf_counter()
    for _ in range(epochs):
        perm = rng.permutation(n)
        for i in range(0, n, batch):
            idx = torch.from_numpy(perm[i : i + batch])
            opt.zero_grad(set_to_none=True)
            crit(model(xt[idx]), yt[idx]).backward()
            opt.step()
            seen += len(idx)
    return seen / (time.perf_counter() - t0)


def _accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    model.eval()
    with torch.no_grad():
        return float((model(torch.from_numpy(x)).argmax(1).numpy() == y).mean())


def _opacus_by_hand(
    model: nn.Module, x: np.ndarray, y: np.ndarray, batch: int, epochs: int, mode: str
) -> float:
    """Opacus' own PrivacyEngine.make_private + DataLoader, as a user would write it; samples/s."""
    from opacus import PrivacyEngine
    from torch.utils.data import DataLoader, TensorDataset

    data = DataLoader(TensorDataset(torch.from_numpy(x), torch.from_numpy(y)), batch_size=batch)
    engine = PrivacyEngine(accountant="rdp")
    crit = nn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    out = engine.make_private(
        module=model,
        optimizer=opt,
        data_loader=data,
        noise_multiplier=1.0,
        max_grad_norm=1.0,
        grad_sample_mode=mode,
        criterion=crit,
    )
    if mode == "ghost":
        m, o, crit, loader = out
    else:
        m, o, loader = out
    seen, t0 = 0, time.perf_counter()
    for _ in range(epochs):
        for xb, yb in loader:
            if len(xb) == 0:
                continue
            o.zero_grad()
            crit(m(xb), yb).backward()
            o.step()
            seen += len(xb)
    return seen / (time.perf_counter() - t0)


def bench_throughput(epochs: int, batch: int, repeats: int) -> None:
    print(
        f"## DP-SGD throughput (batch {batch}, {epochs} epochs, 1 thread, best of {repeats}; "
        "slowdown = non-private samples/s / mode samples/s)\n"
    )
    rows = []
    for wl, (dname, mname, _) in WORKLOADS.items():
        ds = load_dataset(dname)
        x, y = ds.x_train.astype(np.float32), ds.y_train
        _train_nonprivate(_model(ds, mname, 0), x, y, 1, batch, 0.05, 0)  # warm-up
        base = max(
            _train_nonprivate(_model(ds, mname, 0), x, y, epochs, batch, 0.05, 0) for _ in range(repeats)
        )
        rows.append([wl, "non-private", f"{base:,.0f}", "1.00"])
        for mode in ("auto", "ghost", "hooks", "ew", "functorch"):
            cfg = DPSGDConfig(1.0, 1.0, batch, epochs=epochs, lr=0.5, grad_sample_mode=mode)
            try:
                results = [
                    train_dp_sgd(_model(ds, mname, 0), x, y, "cross_entropy", cfg, seed=0)
                    for _ in range(repeats + 1)
                ][1:]
            except Exception as err:  # a mode Opacus refuses for this model is reported, not fatal
                rows.append([wl, f"privagg {mode}", f"failed: {type(err).__name__}", "-"])
                continue
            sps = max(r.samples_per_second for r in results)
            label = f"privagg {mode}" + (f" -> {results[0].grad_sample_mode}" if mode == "auto" else "")
            rows.append([wl, label, f"{sps:,.0f}", f"{base / sps:.2f}"])
        for mode in ("ghost", "hooks"):
            sps = max(
                _opacus_by_hand(_model(ds, mname, 0), x, y, batch, epochs, mode) for _ in range(repeats)
            )
            rows.append([wl, f"Opacus make_private {mode}", f"{sps:,.0f}", f"{base / sps:.2f}"])
    _table(["workload", "trainer", "samples/s", "slowdown vs non-private"], rows)


def bench_accuracy(epochs: int | None, seeds: int, delta: float) -> None:
    print(f"## Accuracy on pooled data (delta {delta}, mean of {seeds} seeds; non-private: 30 epochs)\n")
    anchors = {
        "digits-cnn": {"non-private": 96.9, 8: 88.3, 3: 86.3, 1: 70.0},
        "breast_cancer-mlp": {"non-private": 96.3, 8: 96.5, 3: 95.4, 1: 93.3},
    }
    rows = []
    for wl, (dname, mname, hp) in WORKLOADS.items():
        ds = load_dataset(dname)
        x, y = ds.x_train.astype(np.float32), ds.y_train
        xte = ds.x_test.astype(np.float32)
        accs = []
        for s in range(seeds):
            m = _model(ds, mname, s)
            _train_nonprivate(m, x, y, 30, NONPRIVATE[wl]["batch_size"], NONPRIVATE[wl]["lr"], s)
            accs.append(_accuracy(m, xte, ds.y_test))
        rows.append([wl, "non-private", "-", "-", f"{100 * np.mean(accs):.1f}", anchors[wl]["non-private"]])
        ep = epochs or hp["epochs"]
        for eps in (8, 3, 1):
            z = calibrate_dp_sgd(eps, delta, len(x), hp["batch_size"], ep)
            accs, got = [], 0.0
            for s in range(seeds):
                m = _model(ds, mname, s)
                cfg = DPSGDConfig(
                    z,
                    hp["max_grad_norm"],
                    hp["batch_size"],
                    epochs=ep,
                    lr=hp["lr"],
                    momentum=hp["momentum"],
                    delta=delta,
                )
                res = train_dp_sgd(m, x, y, "cross_entropy", cfg, seed=s)
                got = res.epsilon
                accs.append(_accuracy(m, xte, ds.y_test))
            rows.append(
                [
                    wl,
                    f"eps {eps} ({ep} ep)",
                    f"{z:.4g}",
                    f"{got:.3f}",
                    f"{100 * np.mean(accs):.1f}",
                    anchors[wl][eps],
                ]
            )
    _table(["workload", "privacy", "z", "epsilon (PLD)", "test acc %", "anchor %"], rows)


def _clear_caches() -> None:
    clear_caches()


def _best(fn, repeats: int = 3) -> tuple[float, float]:
    """(value, best wall time of `repeats` calls), privagg caches cleared before each call."""
    times, value = [], 0.0
    for _ in range(repeats):
        _clear_caches()
        t0 = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t0)
    return value, min(times)


def bench_accountant(fine: bool) -> None:
    print(
        "## Accountant time (Poisson q=0.01, z=1.0, delta=1e-5; PLD grid 1e-4; best of 3, caches cleared)\n"
    )
    rows = []
    for rounds in (1_000, 10_000):
        ev = dpa.SelfComposedDpEvent(dpa.PoissonSampledDpEvent(0.01, dpa.GaussianDpEvent(1.0)), rounds)
        for method in ("pld", "rdp"):
            if method == "pld":
                ref, t_ref = _best(
                    lambda ev=ev: (
                        pld_privacy_accountant.PLDAccountant(value_discretization_interval=1e-4)
                        .compose(ev)
                        .get_epsilon(1e-5)
                    )
                )
            else:
                ref, t_ref = _best(
                    lambda ev=ev: rdp_privacy_accountant.RdpAccountant().compose(ev).get_epsilon(1e-5)
                )
            ours, t_ours = _best(lambda r=rounds, m=method: epsilon_for(1.0, 0.01, r, 1e-5, method=m))
            rows.append(
                [
                    rounds,
                    method.upper(),
                    f"{ours:.5f}",
                    f"{ref:.5f}",
                    f"{t_ours:.3f}",
                    f"{t_ref:.3f}",
                    f"{t_ours / t_ref:.2f}",
                ]
            )
    _table(
        ["rounds", "method", "privagg eps", "dp_accounting eps", "privagg s", "dp_accounting s", "ratio"],
        rows,
    )

    _clear_caches()
    acc = PrivacyAccountant(max_epsilon=100.0, delta=1e-5)
    ev1 = poisson_round(1.0, 0.01)
    t0 = time.perf_counter()
    for r in range(200):
        acc.can_spend(ev1)
        acc.commit(ev1, round_id=r)
        acc.epsilon()
    per_round = (time.perf_counter() - t0) / 200
    print(f"Round loop (can_spend + commit + epsilon, 200 rounds): {1000 * per_round:.1f} ms/round\n")

    if fine:
        print("## PLD grid accuracy (vs dp_accounting at a 1e-5 grid)\n")
        rows = []
        for z, q, n in ((1.0, 0.01, 1000), (0.8, 0.05, 200), (2.0, 0.001, 10_000)):
            ev = dpa.SelfComposedDpEvent(dpa.PoissonSampledDpEvent(q, dpa.GaussianDpEvent(z)), n)
            fine_eps = (
                pld_privacy_accountant.PLDAccountant(value_discretization_interval=1e-5)
                .compose(ev)
                .get_epsilon(1e-5)
            )
            ours = epsilon_for(z, q, n, 1e-5)
            rows.append([z, q, n, f"{ours:.5f}", f"{fine_eps:.5f}", f"{100 * (ours / fine_eps - 1):+.3f}%"])
        _table(["z", "q", "rounds", "privagg (1e-4 grid)", "dp_accounting (1e-5 grid)", "difference"], rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", default="throughput,accuracy,accountant")
    ap.add_argument(
        "--epochs", type=int, default=None, help="DP accuracy epochs (default: tuned per workload)"
    )
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--delta", type=float, default=1e-5)
    ap.add_argument("--tp-epochs", type=int, default=3, help="throughput epochs")
    ap.add_argument("--batch", type=int, default=256, help="throughput batch size")
    ap.add_argument("--repeats", type=int, default=3, help="throughput: best of this many runs")
    ap.add_argument("--fine", action="store_true", help="also compare the PLD grid with a 1e-5 grid (slow)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    parts = set(args.parts.split(","))
    if "throughput" in parts:
        bench_throughput(args.tp_epochs, args.batch, args.repeats)
    if "accuracy" in parts:
        bench_accuracy(args.epochs, args.seeds, args.delta)
    if "accountant" in parts:
        bench_accountant(args.fine)


if __name__ == "__main__":
    main()
